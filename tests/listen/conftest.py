"""End-to-end fixtures: ``netconsolectl listen`` as a subprocess on loopback, and a sender."""

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

READY = re.compile(r"listening on udp (\S+):(\d+)")


def terminate(proc: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM a helper server (rsyslogd, prometheus) and wait; SIGKILL after ``timeout`` s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Listener:
    """A running ``netconsolectl listen --port 0``; stdout and stderr go to files (stdout to the
    fd ``stdout`` when given, a terminal for instance)."""

    def __init__(self, tmp: Path, args: list[str], env: dict[str, str] | None = None,
                 out_dir: Path | None = None, stdout: int | None = None) -> None:
        self.stdout_path = (out_dir or tmp) / "listen.out"
        self.stderr_path = tmp / "listen.err"
        self.out = self.stdout_path.open("wb")
        self.err = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "netconsolectl", "listen", "--port", "0", *args],
            stdout=self.out if stdout is None else stdout,
            stderr=self.err,
            env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + 15
        while True:
            m = READY.search(self.stderr_path.read_text())
            if m:
                self.port = int(m.group(2))
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"listen did not start: {self.stderr_path.read_text()}")
            time.sleep(0.05)

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self.out.close()
        self.err.close()
        return rc

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.stdout().splitlines()]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Until ``predicate(stdout text)`` holds (output is flushed when the socket drains)."""
        deadline = time.monotonic() + timeout
        while not predicate(self.stdout()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; output so far:\n{self.stdout()[-2000:]}")
            time.sleep(0.05)


class Sender:
    """A UDP socket bound to a loopback source address, like a netconsole target."""

    def __init__(self, port: int, source: str = "127.0.0.1", dest: str | None = None) -> None:
        family = socket.AF_INET6 if ":" in source else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.source_port = self.sock.getsockname()[1]
        self.dest = (dest or ("::1" if family == socket.AF_INET6 else "127.0.0.1"), port)

    def send(self, *datagrams: bytes, pause: float = 0.0) -> None:
        for d in datagrams:
            self.sock.sendto(d, self.dest)
            if pause:
                time.sleep(pause)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listen(tmp_path: Path) -> Iterator[Any]:
    started: list[Listener] = []

    def start(*args: str, env: dict[str, str] | None = None,
              out_dir: Path | None = None, stdout: int | None = None) -> Listener:
        lst = Listener(tmp_path, list(args), env, out_dir, stdout)
        started.append(lst)
        return lst

    yield start
    for lst in started:
        if lst.proc.poll() is None:
            lst.proc.kill()
            lst.proc.wait()


def wait_for_file_text(path: Path, text: str, deadline: float) -> None:
    """Until ``path`` exists and holds ``text`` (files are written when the receiver's socket
    drains), failing at ``deadline`` (time.monotonic())."""
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} not in {path}"
        time.sleep(0.05)


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port
