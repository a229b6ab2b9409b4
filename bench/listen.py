"""Benchmark ``netconsolectl listen --json > file`` against ``socat -u UDP-RECV:PORT - > file``.

Everything runs on loopback, in one run, on this machine:

1. the load generator's own ceiling (``bench/loadgen.py``: sendmmsg-like UDP_SEGMENT batches
   from several processes), so a result is never limited by the sender;
2. for each receiver and each message kind (100-byte single-datagram extended messages, and
   messages of three ncfrag fragments), a ladder of rates, each sent for a few seconds; the
   highest rate at which every message sent is in the output file is that receiver's result,
   with CPU seconds, peak RSS and the backlog left when the sender stopped;
3. memory after a spoofed-source flood: 100,000 messages from 100,000 distinct sources;
4. forwarding (``--only forward``, also part of the default run): ``listen --quiet --forward``
   into a real rsyslogd on loopback (main queue direct, so a message is in rsyslogd's file before
   it is acknowledged), over RELP (``relp://``) and over syslog TCP (``syslog+tcp://``), with a
   spool directory. A trial counts what is in rsyslogd's file once it stops growing, and what
   ``listen`` itself received: the highest rate at which every message reached rsyslogd is the
   end-to-end result; ``listen``'s own count shows that a slower pipeline never costs
   datagrams (the spool takes the backlog, drained after the sender stops: ``backlog``).
5. ``listen-fleet``: the same ladder with the fleet features on (crash detection is always
   on; ``--silence 60 --metrics 127.0.0.1:0`` added); the ``mixed`` kind (``--kinds mixed``,
   part of the default run) is the fleet's traffic: 90 % single-datagram and 10 %
   three-fragment messages from 1,000 sources, into ``listen-fleet``;
6. ``fleet``: 10,000 sources (distinct addresses) sending together, with the fleet
   features: every message must arrive; memory is reported;
7. ``storm``: 1,000 hosts send a kernel panic report at once: all 1,000 crash events must be
   reported, each complete;
8. ``fragflood``: 100,000 sources each send two of the three fragments of a message, so
   every source leaves a fragment set that never completes: peak memory and the counters.

``--baseline DIR`` runs every ``listen`` receiver a second time from the source tree in DIR
(another checkout, its C module built in place), ladder after ladder with this tree's, so that
both are measured under the same load.

Every stream of the load generator has its own source address (127.0.N.K).

Usage: ``python bench/listen.py [--duration 3] [--quick] [--json results.json]``.
Results vary with other load on the machine: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import loadgen

#: The source tree this benchmark belongs to (the code measured unless --baseline adds another).
TREE = Path(__file__).resolve().parent.parent
READY = re.compile(rb"listening on udp \S+:(\d+)")
SINGLE_LADDER = [10_000, 25_000, 50_000, 100_000, 150_000, 200_000, 250_000, 300_000, 400_000,
                 500_000, 550_000, 600_000, 700_000, 800_000, 1_000_000]
FRAG_LADDER = [5_000, 10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 150_000, 200_000, 225_000,
               250_000, 275_000, 300_000, 350_000]
MIXED_LADDER = [25_000, 50_000, 100_000, 150_000, 200_000, 300_000, 400_000, 500_000, 600_000,
                800_000]
#: Datagrams per message of each kind (mixed: 9 single, 1 of three fragments in 10).
DATAGRAMS_PER_MESSAGE = {"single": 1.0, "frag": 3.0, "mixed": 1.2}
#: Sources of the load generator per kind (each has its own address).
KIND_SOURCES = {"single": 16, "frag": 16, "mixed": 1000}


@dataclass
class Trial:
    receiver: str
    kind: str
    target_rate: int
    sent_rate: float = 0.0
    sent: int = 0
    received: int = 0
    cpu_s: float = 0.0
    peak_rss_mib: float = 0.0
    backlog_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.sent - self.received

    @property
    def ok(self) -> bool:
        return self.sent > 0 and self.lost == 0


def free_udp_port() -> int:
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def proc_tree(pid: int) -> list[int]:
    out = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for c in children:
        out.extend(proc_tree(int(c)))
    return out


def tree_cpu(pid: int) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in proc_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def tree_mem(pid: int, key: str) -> float:
    """Sum of VmRSS or VmHWM (MiB) over the process tree."""
    total = 0
    for p in proc_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def tree_pss(pid: int) -> float:
    """Proportional set size (MiB) of the tree: pages shared by forked workers count once."""
    total = 0
    for p in proc_tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def stop_process(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    """Send ``sig`` and wait; SIGKILL after ``timeout`` seconds."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


#: Bisection steps between the last rate that passed and the first that lost: the ladders'
#: rungs are up to a quarter apart, three steps find the limit to within 3 %.
BISECT_STEPS = 3


def climb(rates: list[int], run_one: Any) -> None:
    """Try the rates in order until one loses messages, then bisect between the last that
    passed and that one (:data:`BISECT_STEPS` times)."""
    last_ok = 0
    for rate in rates:
        if run_one(rate).ok:
            last_ok = rate
            continue
        lost = rate
        for _ in range(BISECT_STEPS if last_ok else 0):
            mid = (last_ok + lost) // 2
            if run_one(mid).ok:
                last_ok = mid
            else:
                lost = mid
        break


class Receiver:
    def __init__(self, name: str, argv: list[str], out: Path, *, port: int | None) -> None:
        self.name = name
        self.out_path = out
        self.out = out.open("wb")
        self.err_path = out.with_suffix(".err")
        self.err = self.err_path.open("wb")
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=self.err)
        if port is not None:
            self.port = port
            time.sleep(0.3)  # socat prints nothing when ready
        else:
            deadline = time.monotonic() + 20
            while True:
                m = READY.search(self.err_path.read_bytes())
                if m:
                    self.port = int(m.group(1))
                    break
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{name} did not start: {self.err_path.read_text()}")
                time.sleep(0.05)

    def stop(self) -> tuple[float, float]:
        """Stop; returns (CPU seconds of the whole tree, peak RSS MiB summed over the tree)."""
        cpu = tree_cpu(self.proc.pid)
        hwm = tree_mem(self.proc.pid, "VmHWM")
        stop_process(self.proc, signal.SIGINT if self.name.startswith("listen") else
                     signal.SIGTERM, 30)
        self.out.close()
        self.err.close()
        return cpu, hwm


def wait_drained(path: Path, quiet: float = 0.5, limit: float = 20.0) -> float:
    """Wait until ``path`` stops growing; returns how long it kept growing."""
    start = time.monotonic()
    last_size = -1
    last_change = start
    while time.monotonic() - start < limit:
        size = path.stat().st_size
        now = time.monotonic()
        if size != last_size:
            last_size = size
            last_change = now
        elif now - last_change >= quiet:
            break
        time.sleep(0.05)
    return max(0.0, last_change - start)


def count_listen(path: Path) -> tuple[int, dict[str, Any]]:
    complete = 0
    counters: dict[str, Any] = {}
    with path.open("rb") as f:
        for line in f:
            if line.startswith(b'{"type":"message"'):
                if b'"incomplete":false,"id":' in line:
                    complete += 1
            elif line.startswith(b'{"type":"counters"'):
                counters = json.loads(line)
    return complete, counters


def count_socat(path: Path, kind: str) -> int:
    data = path.read_bytes()
    if kind == "single":
        return data.count(b"\n")
    return data.count(b"ncfrag=") // 3


def trial(name: str, argv_for: Any, kind: str, rate: int, duration: float, tmp: Path,
          procs: int) -> Trial:
    out = tmp / f"{name}-{kind}-{rate}.out"
    if name.startswith("socat"):
        port = free_udp_port()
        rx = Receiver(name, argv_for(port), out, port=port)
    else:
        rx = Receiver(name, argv_for(0), out, port=None)
    cpu0 = tree_cpu(rx.proc.pid)
    res = loadgen.run(("127.0.0.1", rx.port), kind, rate, duration, procs=procs,
                      sources=KIND_SOURCES[kind])
    backlog = wait_drained(out)
    cpu, hwm = rx.stop()
    t = Trial(name, kind, rate, sent_rate=float(res["rate"]),  # type: ignore[arg-type]
              sent=int(res["messages"]), cpu_s=round(cpu - cpu0, 2),  # type: ignore[call-overload]
              peak_rss_mib=round(hwm, 1), backlog_s=round(backlog, 2))
    if name.startswith("socat"):
        t.received = count_socat(out, kind)
    else:
        t.received, counters = count_listen(out)
        t.extra = {k: counters.get(k) for k in ("lost", "incomplete", "malformed")}
    out.unlink()
    return t


def ladder(name: str, argv_for: Any, kind: str, duration: float, tmp: Path, procs: int,
           quick: bool, only_rates: list[int] | None = None) -> list[Trial]:
    rates = only_rates or {"single": SINGLE_LADDER, "frag": FRAG_LADDER,
                           "mixed": MIXED_LADDER}[kind]
    if quick:
        rates = rates[::2]
    trials: list[Trial] = []

    def run_one(rate: int) -> Trial:
        t = trial(name, argv_for, kind, rate, duration, tmp, procs)
        trials.append(t)
        mark = "ok  " if t.ok else "LOSS"
        print(f"  {mark} {name:16s} {kind:6s} target {rate:7d}/s sent {t.sent_rate:9.0f}/s "
              f"lost {t.lost:8d} ({100 * t.lost / max(t.sent, 1):5.1f}%) cpu {t.cpu_s:5.2f}s "
              f"rss {t.peak_rss_mib:6.1f}MiB backlog {t.backlog_s:4.2f}s", flush=True)
        return t

    climb(rates, run_one)
    return trials


def flood(count: int, tmp: Path, *, incomplete: bool = False,
          argv: list[str] | None = None) -> dict[str, Any]:
    out = tmp / "flood.out"
    rx = Receiver("listen", argv or listen_argv([], 0), out, port=None)
    time.sleep(0.5)
    before = tree_mem(rx.proc.pid, "VmRSS")
    pss_before = tree_pss(rx.proc.pid)
    start = time.monotonic()
    sent = loadgen.flood(("127.0.0.1", rx.port), count, incomplete=incomplete)
    elapsed = time.monotonic() - start
    wait_drained(out)
    time.sleep(0.5)
    after = tree_mem(rx.proc.pid, "VmRSS")
    pss_after = tree_pss(rx.proc.pid)
    processes = len(proc_tree(rx.proc.pid))
    rx.proc.send_signal(signal.SIGUSR1)
    time.sleep(0.5)
    _cpu, hwm = rx.stop()
    received, counters = count_listen(out)
    out.unlink()
    return {
        "sources": sent,
        "send_seconds": round(elapsed, 1),
        "received": received,
        "rss_before_mib": round(before, 1),
        "rss_after_mib": round(after, 1),
        "pss_before_mib": round(pss_before, 1),
        "pss_after_mib": round(pss_after, 1),
        "processes": processes,
        "peak_rss_mib": round(hwm, 1),
        "evicted_sources": counters.get("evicted_sources"),
        **{k: counters.get(k) for k in ("incomplete", "evicted_fragments",
                                         "fragment_sets_limited") if k in counters},
    }


RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
FORWARD_LADDER = [5_000, 10_000, 20_000, 40_000, 80_000, 100_000, 150_000, 200_000, 300_000,
                  400_000, 500_000, 600_000, 800_000, 1_000_000]


class Rsyslogd:
    """rsyslogd in the foreground with its own configuration: imtcp and imrelp on loopback,
    everything into one file (one line per message)."""

    def __init__(self, tmp: Path, nice: int = 0) -> None:
        import socket

        self.dir = Path(tempfile.mkdtemp(prefix="rsyslog-", dir=tmp))
        ports = []
        for _ in range(2):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
            s.close()
        self.tcp, self.relp = ports
        self.out = self.dir / "out.log"
        conf = self.dir / "rsyslog.conf"
        conf.write_text(
            f'global(workDirectory="{self.dir}")\nmain_queue(queue.type="Direct")\n'
            'module(load="imtcp")\nmodule(load="imrelp")\n'
            f'input(type="imtcp" address="127.0.0.1" port="{self.tcp}")\n'
            f'input(type="imrelp" address="127.0.0.1" port="{self.relp}")\n'
            'template(name="t" type="string" string="%msg%\\n")\n'
            f'*.* action(type="omfile" file="{self.out}" template="t")\n'
        )
        self.log = (self.dir / "rsyslogd.log").open("wb")
        self.proc = subprocess.Popen(["nice", "-n", str(nice), RSYSLOGD, "-n", "-f", str(conf),
                                      "-i", str(self.dir / "pid")], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.relp), timeout=0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("rsyslogd did not start: "
                                     + (self.dir / "rsyslogd.log").read_text()) from None
                time.sleep(0.1)
        self.out.touch()

    def stop(self) -> float:
        """Stop; returns its CPU seconds."""
        cpu = tree_cpu(self.proc.pid)
        stop_process(self.proc, signal.SIGTERM, 20)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return cpu


def forward_trial(transport: str, rate: int, duration: float, tmp: Path, procs: int) -> Trial:
    rs = Rsyslogd(tmp)
    url = (f"relp://127.0.0.1:{rs.relp}" if transport == "relp"
           else f"syslog+tcp://127.0.0.1:{rs.tcp}")
    spool = Path(tempfile.mkdtemp(prefix="spool-", dir=tmp))
    out = tmp / f"forward-{transport}-{rate}.out"
    argv = [*netconsolectl_argv(), "listen", "--port", "0", "--quiet", "--spool-dir", str(spool),
            "--forward", url]
    rx = Receiver(f"listen-{transport}", argv, out, port=None)
    cpu0 = tree_cpu(rx.proc.pid)
    res = loadgen.run(("127.0.0.1", rx.port), "single", rate, duration, procs=procs)
    backlog = wait_drained(rs.out, quiet=1.0, limit=120.0)
    cpu, hwm = rx.stop()
    lines = rs.out.read_bytes().count(b"loadgen src=")  # not rsyslogd's own messages
    rs_cpu = rs.stop()
    stderr = out.with_suffix(".err").read_text()
    counters = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)",
                                                 [x for x in stderr.splitlines()
                                                  if "counters:" in x][-1])}
    shutil.rmtree(spool, ignore_errors=True)
    sent = int(res["messages"])  # type: ignore[call-overload]
    t = Trial(f"listen->{transport}", "single", rate,
              sent_rate=float(res["rate"]),  # type: ignore[arg-type]
              sent=sent, received=min(lines, sent), cpu_s=round(cpu - cpu0, 2),
              peak_rss_mib=round(hwm, 1), backlog_s=round(backlog, 2))
    t.extra = {"rsyslog_lines": lines, "listen_received": counters.get("received"),
               "listen_lost": counters.get("lost"),
               "forward_errors": counters.get("forward_errors"),
               "spool_dropped": counters.get("spool_dropped"), "rsyslog_cpu_s": round(rs_cpu, 2)}
    return t


def forward_ladder(transport: str, duration: float, tmp: Path, procs: int, quick: bool,
                   only_rates: list[int] | None) -> list[Trial]:
    rates = only_rates or (FORWARD_LADDER[::2] if quick else FORWARD_LADDER)
    trials: list[Trial] = []

    def run_one(rate: int) -> Trial:
        t = forward_trial(transport, rate, duration, tmp, procs)
        trials.append(t)
        mark = "ok  " if t.ok else "LOSS"
        x = t.extra
        print(f"  {mark} {t.receiver:18s} target {rate:7d}/s sent {t.sent_rate:9.0f}/s "
              f"in rsyslog {x['rsyslog_lines']:8d} of {t.sent:8d}, listen received "
              f"{x['listen_received']} (lost {x['listen_lost']}) cpu {t.cpu_s:5.2f}s "
              f"rss {t.peak_rss_mib:6.1f}MiB backlog {t.backlog_s:5.2f}s", flush=True)
        return t

    climb(rates, run_one)
    return trials


#: The fleet features (crash detection is always on).
FLEET_OPTIONS = ["--silence", "60", "--metrics", "127.0.0.1:0"]


def fleet_run(sources: int, per_source: int, duration: float, tmp: Path) -> dict[str, Any]:
    """``sources`` hosts sending together (``per_source`` messages each over ``duration``)."""
    out = tmp / "fleet.out"
    rx = Receiver("listen", listen_argv([*FLEET_OPTIONS, "--max-hosts", str(sources)], 0),
                  out, port=None)
    time.sleep(0.5)
    before = tree_mem(rx.proc.pid, "VmRSS")
    res = loadgen.fleet(("127.0.0.1", rx.port), sources, per_source, duration)
    # a longer quiet spell than the ladder's: on a busy machine the workers may pause longer
    # than half a second, and listen drains at most a second once told to stop
    backlog = wait_drained(out, quiet=3.0, limit=120.0)
    time.sleep(1.5)  # one more hand-over of per-host figures
    metrics = scrape_hosts(rx)
    after = tree_mem(rx.proc.pid, "VmRSS")
    pss = tree_pss(rx.proc.pid)
    cpu, hwm = rx.stop()
    received, counters = count_listen(out)
    out.unlink()
    sent = int(res["messages"])  # type: ignore[call-overload]
    return {"sources": sources, "sent": sent, "received": received, "lost": sent - received,
            "send_seconds": round(float(res["elapsed"]), 1),  # type: ignore[arg-type]
            "rate": round(sent / float(res["elapsed"])),  # type: ignore[arg-type]
            "backlog_s": round(backlog, 2), "cpu_s": round(cpu, 1),
            "rss_before_mib": round(before, 1), "rss_after_mib": round(after, 1),
            "pss_after_mib": round(pss, 1), "peak_rss_mib": round(hwm, 1),
            "hosts_in_metrics": metrics, "counted_lost": counters.get("lost")}


def scrape_hosts(rx: Receiver) -> int | None:
    """How many hosts /metrics lists with their own netconsole_messages_total series."""
    import urllib.request

    m = re.search(rb"metrics on http://\S+:(\d+)/metrics", rx.err_path.read_bytes())
    if m is None:
        return None
    with urllib.request.urlopen(f"http://127.0.0.1:{int(m.group(1))}/metrics", timeout=10) as r:
        text = r.read()
    return text.count(b"\nnetconsole_messages_total{")


PANIC = [
    b"0,%d,%d,-;Kernel panic - not syncing: sysrq triggered crash\n",
    b"4,%d,%d,-;CPU: 0 UID: 0 PID: 1 Comm: sh Not tainted 6.12.0 #1\n",
    b"4,%d,%d,-;Hardware name: QEMU Standard PC (i440FX + PIIX, 1996)\n",
    b"4,%d,%d,-;Call Trace:\n",
    b"4,%d,%d,-; <TASK>\n",
    b"4,%d,%d,-; dump_stack_lvl+0x5d/0x80\n",
    b"4,%d,%d,-; panic+0x118/0x2ed\n",
    b"4,%d,%d,-; sysrq_handle_crash+0x1a/0x20\n",
    b"4,%d,%d,-; </TASK>\n",
    b"4,%d,%d,-;Kernel Offset: disabled\n",
    b"0,%d,%d,-;---[ end Kernel panic - not syncing: sysrq triggered crash ]---\n",
]


def crash_storm(hosts: int, tmp: Path) -> dict[str, Any]:
    """``hosts`` hosts send a panic report at the same moment."""
    out = tmp / "storm.out"
    rx = Receiver("listen", listen_argv(FLEET_OPTIONS, 0), out, port=None)
    report = [line % (100 + i, 5_000_000 + i) for i, line in enumerate(PANIC)]
    start = time.monotonic()
    sent = loadgen.crash_storm(("127.0.0.1", rx.port), hosts, report)
    send_s = time.monotonic() - start
    wait_drained(out)
    cpu, hwm = rx.stop()
    crashes = complete = 0
    kinds: dict[str, int] = {}
    with out.open("rb") as f:
        for line in f:
            if line.startswith(b'{"type":"crash"'):
                e = json.loads(line)
                crashes += 1
                complete += bool(e["complete"]) and e["text"].count("\n") == len(PANIC) - 1
                kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    out.unlink()
    return {"hosts": hosts, "datagrams": sent, "send_seconds": round(send_s, 2),
            "crash_events": crashes, "complete_and_whole": complete, "kinds": kinds,
            "cpu_s": round(cpu, 2), "peak_rss_mib": round(hwm, 1)}


def netconsolectl_argv(tree: Path | None = None) -> list[str]:
    """``python -m netconsolectl`` from the source tree ``tree`` (this one by default). ``-P``
    keeps the current directory off ``sys.path``: without it, a run started in a checkout
    would import that checkout whatever PYTHONPATH says, and a baseline would be the new code."""
    return ["env", f"PYTHONPATH={tree or TREE}", sys.executable, "-P", "-m", "netconsolectl"]


def listen_argv(extra: list[str], port: int, tree: Path | None = None) -> list[str]:
    """``listen --json`` from this tree, or from the source tree ``tree`` (--baseline)."""
    return [*netconsolectl_argv(tree), "listen", "--port", str(port), "--json", *extra]


def busy_share(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy over ``seconds`` (other work on the machine, when idle here)."""

    def sample() -> tuple[int, int]:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = f[3] + f[4]
        return sum(f), idle

    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return round(1 - (i1 - i0) / max(t1 - t0, 1), 2)


def context() -> dict[str, Any]:
    return {
        "busy_share_before_start": busy_share(),
        "cpus": os.cpu_count(),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "kernel": platform.release(),
        "python": platform.python_version(),
        "rmem_max": int(Path("/proc/sys/net/core/rmem_max").read_text()),
        "root": os.geteuid() == 0,
    }


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per rate (max 10)")
    ap.add_argument("--procs", type=int, default=1, help="load generator processes")
    ap.add_argument("--quick", action="store_true", help="every other rate, smaller flood")
    ap.add_argument("--only", choices=["listen", "listen-fleet", "socat", "flood", "forward",
                                       "fleet", "storm", "fragflood"], action="append")
    ap.add_argument("--baseline", type=Path,
                    help="also run each listen receiver from this source tree, alternating")
    ap.add_argument("--workers", type=int, action="append", default=None,
                    help="also run listen with --workers N (repeatable)")
    ap.add_argument("--json", type=Path, help="write all results here")
    ap.add_argument("--rates", help="comma-separated rates to try instead of the ladders")
    ap.add_argument("--kinds", default="single,frag,mixed",
                    help="message kinds (single,frag,mixed)")
    ap.add_argument("--no-default-listen", action="store_true",
                    help="with --workers: only the listen --workers variants")
    return ap.parse_args()


def make_receivers(args: argparse.Namespace, only: set[str],
                   trees: list[tuple[str, Path | None]]) -> dict[str, Any]:
    """Name -> argv for a port, in the order the ladders run them."""
    receivers: dict[str, Any] = {}
    for suffix, tree in trees:
        if "listen" in only and not args.no_default_listen:
            receivers["listen" + suffix] = lambda port, t=tree: listen_argv([], port, t)
        if "listen-fleet" in only:
            receivers["listen-fleet" + suffix] = lambda port, t=tree: listen_argv(
                FLEET_OPTIONS, port, t)
    if "listen" in only:
        for w in args.workers or []:
            receivers[f"listen-w{w}"] = lambda port, w=w: listen_argv(["--workers", str(w)],
                                                                       port)
    if "socat" in only:
        socat = shutil.which("socat")
        if socat is None:
            print("socat not installed: skipped")
        else:
            receivers["socat"] = lambda port: [socat, "-u", f"UDP-RECV:{port}", "-"]
            # the same with a receive buffer as large as socat can ask for (rmem_max caps it)
            receivers["socat-rcvbuf"] = lambda port: [
                socat, "-u", f"UDP-RECV:{port},rcvbuf={32 << 20}", "-"]
    return receivers


def run_extras(args: argparse.Namespace, only: set[str], trees: list[tuple[str, Path | None]],
               tmp: Path, results: dict[str, Any]) -> list[Trial]:
    """Everything but the ladders: forwarding, floods, the fleet, the crash storm."""
    trials: list[Trial] = []
    duration = min(args.duration, 10.0)
    rates = [int(r) for r in args.rates.split(",")] if args.rates else None
    if "forward" in only:
        if not Path(RSYSLOGD).exists():
            print("rsyslogd not installed: forwarding run skipped")
        else:
            for transport in ("relp", "tcp"):
                trials += forward_ladder(transport, duration, tmp, args.procs, args.quick,
                                         rates)
    if "flood" in only:
        results["flood"] = flood(20_000 if args.quick else 100_000, tmp)
        print("flood:", json.dumps(results["flood"]))
    if "fleet" in only:
        results["fleet"] = fleet_run(10_000, 20, 5.0, tmp)
        print("fleet:", json.dumps(results["fleet"]))
    if "storm" in only:
        results["storm"] = crash_storm(1_000, tmp)
        print("storm:", json.dumps(results["storm"]))
    if "fragflood" in only:
        for suffix, tree in trees:
            key = "fragflood" + suffix
            results[key] = flood(20_000 if args.quick else 100_000, tmp, incomplete=True,
                                 argv=listen_argv([], 0, tree))
            print(f"{key}:", json.dumps(results[key]))
    return trials


def summarize(trials: list[Trial]) -> dict[str, Any]:
    """The highest zero-loss rate of each receiver and kind, printed with its ratios."""
    best: dict[str, Any] = {}
    for t in trials:
        key = f"{t.receiver}/{t.kind}"
        if t.ok and t.sent_rate > best.get(key, {}).get("rate", 0):
            best[key] = {"rate": round(t.sent_rate), "cpu_s": t.cpu_s,
                         "cpu_us_per_msg": round(1e6 * t.cpu_s / max(t.sent, 1), 2),
                         "peak_rss_mib": t.peak_rss_mib, "backlog_s": t.backlog_s}
    print("\nhighest zero-loss rate (messages/s):")
    for key, b in sorted(best.items()):
        kind = key.split("/")[1]
        ratio = ""
        for ref_name in ("socat", "socat-rcvbuf"):
            ref = best.get(f"{ref_name}/{kind}")
            if ref and ref["rate"] and not key.startswith(ref_name + "/"):
                ratio += f" = {b['rate'] / ref['rate']:.2f} x {ref_name}"
        single = best.get(key.split("/")[0] + "/single")
        if kind != "single" and single and single["rate"]:
            dg = b["rate"] * DATAGRAMS_PER_MESSAGE.get(kind, 1.0)
            ratio += f" = {dg:.0f} datagrams/s = {dg / single['rate']:.2f} x single's"
        print(f"  {key:20s} {b['rate']:8d}{ratio}  cpu {b['cpu_us_per_msg']} us/msg, "
              f"peak rss {b['peak_rss_mib']} MiB")
    return best


def main() -> None:
    args = parse_args()
    duration = min(args.duration, 10.0)
    results: dict[str, Any] = {"context_before": context()}
    print("context:", json.dumps(results["context_before"]))
    gen = {k: loadgen.max_rate(k, args.procs, 1.5) for k in ("single", "frag")}
    for v in gen.values():
        v.pop("streams", None)
    results["generator_max"] = gen
    print(f"generator ceiling: single {gen['single']['rate']:.0f} msg/s, "
          f"frag {gen['frag']['rate']:.0f} msg/s ({gen['frag']['datagrams']} datagrams)")
    only = set(args.only or ["listen", "listen-fleet", "socat", "flood", "forward", "fleet",
                             "storm", "fragflood"])
    trees: list[tuple[str, Path | None]] = [("", None)]
    if args.baseline is not None:
        trees.insert(0, ("-base", args.baseline.resolve()))
    receivers = make_receivers(args, only, trees)
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="listen-bench-") as d:
        tmp = Path(d)
        rates = [int(r) for r in args.rates.split(",")] if args.rates else None
        for kind in args.kinds.split(","):
            for name, argv_for in receivers.items():
                if kind == "mixed" and not name.startswith("listen-fleet"):
                    continue  # the fleet's traffic, into the fleet's receiver
                trials += ladder(name, argv_for, kind, duration, tmp, args.procs, args.quick,
                                 rates)
        trials += run_extras(args, only, trees, tmp, results)
    results["trials"] = [asdict(t) | {"lost": t.lost, "ok": t.ok} for t in trials]
    results["best_zero_loss"] = summarize(trials)
    results["context_after"] = context()
    print("context after:", json.dumps(results["context_after"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
