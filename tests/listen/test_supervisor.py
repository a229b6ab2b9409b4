"""The receiver's start-up checks, its supervisor of workers, and a full disk under --output-dir.

Run as root (files are chowned, a tmpfs is mounted); everything on loopback.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netconsolectl.errors import EXIT_INVALID, EXIT_UNSAFE_CONFIG
from tests.listen.conftest import Sender, wait_for_file_text
from tests.listen.test_listen import ext

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mount)")


def listen_run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netconsolectl", "listen", "--port", "0",
                           *args], capture_output=True, text=True, timeout=timeout)


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    [line] = r.stderr.splitlines()
    assert line.startswith("netconsolectl: error: "), line
    return line


# -- 23.1: files others could write ---------------------------------------------------------


def private_dir(tmp_path: Path, name: str, mode: int = 0o755, uid: int = 0) -> Path:
    os.chmod(tmp_path, 0o755)
    d = tmp_path / name
    d.mkdir()
    os.chmod(d, mode)
    os.chown(d, uid, -1)
    return d


def file_in(d: Path, name: str, text: str, mode: int = 0o644, uid: int = 0) -> Path:
    p = d / name
    p.write_text(text)
    os.chmod(p, mode)
    os.chown(p, uid, -1)
    return p


@root_only
@pytest.mark.parametrize("mode, uid, dir_mode, shown, fix", [
    (0o666, 0, 0o755, "owned by uid 0 (root), mode 0666", "chmod go-w {file}"),
    (0o644, 65534, 0o755, "owned by uid 65534", "chown root: {file}"),
    (0o644, 0, 0o777, "{dir} is owned by uid 0 (root), mode 0777", "chmod go-w {dir}"),
])
def test_config_others_could_write_is_refused(tmp_path: Path, mode: int, uid: int,
                                              dir_mode: int, shown: str, fix: str) -> None:
    marker = tmp_path / "ran"
    d = private_dir(tmp_path, "etc", dir_mode)
    config = file_in(d, "listen.toml", f'on-crash = ["/bin/touch", "{marker}"]\n', mode, uid)
    r = listen_run("--config", str(config))
    assert r.returncode == EXIT_UNSAFE_CONFIG, r.stderr
    line = one_error_line(r)
    assert line.startswith(f"netconsolectl: error: refusing --config {config}: "), line
    assert shown.format(dir=d) in line and fix.format(file=config, dir=d) in line, line
    assert "listening" not in r.stderr and not marker.exists()


@root_only
def test_on_crash_executable_and_directories_others_could_write_are_refused(
        tmp_path: Path) -> None:
    safe = private_dir(tmp_path, "safe")
    script = file_in(safe, "hook", "#!/bin/sh\n", mode=0o757)
    r = listen_run("--on-crash", f"{script} arg")
    assert r.returncode == EXIT_UNSAFE_CONFIG, r.stderr
    assert f"refusing --on-crash {script}: owned by uid 0 (root), mode 0757" in one_error_line(r)
    open_dir = private_dir(tmp_path, "open", 0o1777)  # sticky is no help where files are made
    r = listen_run("--quiet", "--output-dir", str(open_dir / "logs"))
    assert r.returncode == EXIT_UNSAFE_CONFIG
    r = listen_run("--quiet", "--output-dir", str(open_dir))
    assert r.returncode == EXIT_UNSAFE_CONFIG, r.stderr
    assert f"refusing --output-dir {open_dir}: owned by uid 0 (root), mode 1777" in \
        one_error_line(r)
    theirs = private_dir(tmp_path, "theirs", uid=65534)
    r = listen_run("--quiet", "--output-dir", str(safe), "--spool-dir", str(theirs))
    assert r.returncode == EXIT_UNSAFE_CONFIG, r.stderr
    assert f"refusing --spool-dir {theirs}: owned by uid 65534" in one_error_line(r)
    assert not list(safe.glob("*.log"))


@root_only
def test_root_owned_files_are_accepted(listen: Any, tmp_path: Path) -> None:
    d = private_dir(tmp_path, "etc")
    out = tmp_path / "out"
    config = file_in(d, "listen.toml", f'on-crash = ["true"]\noutput-dir = "{out}"\n'
                     f'quiet = true\nspool-dir = "{tmp_path / "spool"}"\n')
    lst = listen("--config", str(config))
    assert lst.stop() == 0, lst.stderr()


# -- 23.11: everything validated at start ---------------------------------------------------


def test_missing_on_crash_executable_is_refused_at_start(tmp_path: Path) -> None:
    r = listen_run("--on-crash", f"{tmp_path}/no-such-hook --flag")
    assert r.returncode == EXIT_INVALID
    assert one_error_line(r).startswith(
        f"netconsolectl: error: --on-crash {tmp_path}/no-such-hook: not found")
    r = listen_run("--on-crash", str(tmp_path))  # a directory is no command either
    assert r.returncode == EXIT_INVALID and "not an executable file" in one_error_line(r)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_metrics_address_in_use_is_refused_at_start(workers: str) -> None:
    pytest.importorskip("prometheus_client")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = listen_run("--workers", workers, "--metrics", f"127.0.0.1:{port}")
    assert r.returncode == EXIT_INVALID, r.stderr
    assert f"--metrics 127.0.0.1:{port}: cannot listen" in one_error_line(r)


def test_a_spool_in_use_by_another_listen_is_refused_at_start(listen: Any, tmp_path: Path
                                                               ) -> None:
    port = socket.socket()
    port.bind(("127.0.0.1", 0))  # nothing listens: the forwarder keeps retrying, spooling
    url = f"relp://127.0.0.1:{port.getsockname()[1]}"
    spool = tmp_path / "spool"
    first = listen("--quiet", "--workers", "2", "--spool-dir", str(spool), "--forward", url)
    r = listen_run("--quiet", "--workers", "2", "--spool-dir", str(spool), "--forward", url)
    assert r.returncode == EXIT_INVALID, r.stderr
    assert "is in use by another listen process" in one_error_line(r)
    assert first.stop() == 0
    port.close()


# -- 23.12: workers capped, Ctrl-C at start-up -----------------------------------------------


def test_workers_beyond_a_multiple_of_the_cpus_are_refused() -> None:
    cpus = os.cpu_count() or 1
    r = listen_run("--workers", "1000")
    assert r.returncode == EXIT_INVALID
    assert one_error_line(r).startswith(
        f"netconsolectl: error: --workers 1000: at most {4 * cpus} on this machine")
    r = listen_run("--workers", str(4 * cpus + 1))
    assert r.returncode == EXIT_INVALID


def test_ctrl_c_while_a_worker_is_starting_stops_the_receiver(listen: Any, tmp_path: Path
                                                              ) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    # Worker 0 reads its boot table at start: a FIFO nobody writes holds it in start-up.
    os.mkfifo(spool / "boots-w0.json")
    lst = listen("--quiet", "--output-dir", str(tmp_path / "out"), "--spool-dir", str(spool),
                 "--workers", "2")
    # Ctrl-C reaches the whole foreground group, in no set order: here the workers first.
    for pid in children(lst.proc.pid):
        os.kill(pid, signal.SIGINT)
    time.sleep(0.5)  # (not an assertion: lets the workers act on it before the parent)
    assert lst.stop(signal.SIGINT) == 0
    err = lst.stderr()
    assert "error:" not in err and "restarting" not in err and "Traceback" not in err, err
    assert re.search(r"counters: received=0 ", err), err


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_worker_that_keeps_dying_is_restarted_with_a_back_off(listen: Any) -> None:
    lst = listen("--json", "--workers", "2")
    for _ in range(3):
        victim = children(lst.proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 40
        while victim in (now := children(lst.proc.pid)) or len(now) < 2:
            assert time.monotonic() < deadline, lst.stderr()
            time.sleep(0.05)
    assert lst.stop() == 0
    restarts = [x for x in lst.stderr().splitlines() if "restarting it" in x]
    assert len(restarts) == 3
    assert restarts[0].endswith("restarting it")  # at once the first time
    assert re.search(r"restarting it in \d+\.\d s$", restarts[2]), restarts


# -- 23.5: a full disk under --output-dir ----------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a real file system that fills up."""
    d = tmp_path / "fs"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def fill(fs: Path) -> Path:
    filler = fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    for size in (65536, 4096, 1):  # to the last byte
        try:
            while True:
                os.write(fd, b"\0" * size)
        except OSError:
            pass
    os.close(fd)
    return filler


def said_once_full_and_once_back(err: str, output: str) -> None:
    """The receiver kept running, and said once that ``output``'s disk was full (naming the
    counter) and once that writing works again."""
    assert "restarting" not in err and "error:" not in err, err
    full = [x for x in err.splitlines() if "No space left on device" in x]
    assert len(full) == 1 and output in full[0] and "output_dropped" in full[0], err
    assert len([x for x in err.splitlines() if "writing again" in x]) == 1, err


@root_only
@pytest.mark.parametrize("workers", ["1", "2"])
def test_full_output_disk_counts_what_is_dropped_and_resumes(listen: Any, small_fs: Path,
                                                             workers: str) -> None:
    out = small_fs / "logs"
    lst = listen("--json", "--output-dir", str(out), "--workers", workers)
    s = Sender(lst.port)
    s.send(ext(1, b"before the disk filled"))
    log = out / "127.0.0.1.log"
    wait_for_file_text(log, "before the disk filled", time.monotonic() + 10)
    filler = fill(small_fs)
    s.send(*(ext(seq, b"while full %d" % seq + b"x" * 400) for seq in range(2, 202)))
    lst.wait_for(lambda o: "while full 201" in o)
    lst.send_signal(signal.SIGUSR1)
    lst.wait_for(lambda o: '"type":"counters"' in o)
    counters = [x for x in lst.json() if x["type"] == "counters"][-1]
    assert counters["messages"] == 201 and counters["output_dropped"] > 0, counters
    filler.unlink()  # space is back
    s.send(ext(202, b"after space returned"))
    lst.wait_for(lambda o: "after space returned" in o)
    wait_for_file_text(log, "after space returned", time.monotonic() + 10)
    assert lst.stop() == 0
    said_once_full_and_once_back(lst.stderr(), "--output-dir")
    text = log.read_text()
    assert "before the disk filled" in text and text.endswith("after space returned\n")
    assert all(line.count(" 127.0.0.1:") <= 1 for line in text.splitlines())  # no merged lines
    final = [x for x in lst.json() if x["type"] == "counters"][-1]
    # whole lines written before the disk was full to the last byte; a line cut short by it
    # is counted as dropped (the next line starts on a line of its own)
    written = sum(1 for x in text.splitlines() if "while full" in x and x.endswith("x" * 400))
    assert final["output_dropped"] == 200 - written and final["messages"] == 202, final


@root_only
@pytest.mark.parametrize("workers", ["1", "2"])
def test_full_disk_under_standard_output_counts_what_is_dropped_and_resumes(
        listen: Any, small_fs: Path, workers: str) -> None:
    """``listen --json > file`` with the file's disk full: the lines are dropped and counted,
    said once, and writing resumes with whole lines; the receiver keeps running."""
    lst = listen("--json", "--workers", workers, out_dir=small_fs)
    s = Sender(lst.port)
    s.send(ext(1, b"before the disk filled"))
    lst.wait_for(lambda o: "before the disk filled" in o)
    filler = fill(small_fs)
    s.send(*(ext(seq, b"while full %d" % seq + b"x" * 400) for seq in range(2, 202)))
    deadline = time.monotonic() + 10
    while "lines are dropped" not in lst.stderr():
        assert time.monotonic() < deadline, lst.stderr()
        time.sleep(0.05)
    filler.unlink()  # space is back
    s.send(ext(202, b"after space returned"))
    lst.wait_for(lambda o: "after space returned" in o)
    lst.send_signal(signal.SIGUSR1)
    lst.wait_for(lambda o: '"type":"counters"' in o)
    assert lst.stop() == 0
    said_once_full_and_once_back(lst.stderr(), "standard output")
    records = []
    for line in lst.stdout().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:  # cut short by the full disk (and counted as dropped); never merged
            assert line.startswith('{"type":"message"') and "}{" not in line, line
    texts = [r.get("text", "") for r in records]
    assert texts[0] == "before the disk filled" and "after space returned" in texts
    counters = [r for r in records if r["type"] == "counters"][-1]
    written = sum(1 for t in texts if t.startswith("while full"))
    assert counters["messages"] == 202 and counters["output_dropped"] == 200 - written, counters


def test_listen_stops_when_its_terminal_hangs_up(listen: Any) -> None:
    """``listen --json`` run from an ssh session that ended: writes to its terminal fail with
    EIO. That is the output gone (as a closed pipe is), not a failing disk: every worker stops
    and ``listen`` exits 0 without a disk warning."""
    master, slave = os.openpty()
    try:
        lst = listen("--json", "--workers", "2", stdout=slave)
    finally:
        os.close(slave)
    try:
        sender = Sender(lst.port)
        sender.send(ext(1, b"before"))
        got = b""
        while b"before" not in got:
            got += os.read(master, 4096)
        os.close(master)  # the terminal hangs up
        master = -1
        deadline = time.monotonic() + 15
        seq = 2
        while lst.proc.poll() is None and time.monotonic() < deadline:
            sender.send(ext(seq, b"after"))
            seq += 1
            time.sleep(0.05)
        assert lst.stop() == 0
        err = lst.stderr()
        assert "output_dropped=0" in err and "warning" not in err, err
    finally:
        if master >= 0:
            os.close(master)
