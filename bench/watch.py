#!/usr/bin/env python3
"""``netconsolectl watch`` as a whole process: reaction time, idle CPU and peak memory.

    sudo python bench/watch.py [--reactions 20] [--idle 60]

Builds a machine namespace H behind a router R (collector 10.0.2.2), and a configfs sandbox
holding one target as the kernel would show it (plain files: the host has no configfs, and a
directory with the attribute files takes the same writes). Then, in one run:

* the baseline: ``python -c pass`` (wall time and peak RSS);
* ``netconsolectl watch`` started in H: time to its ready line;
* reaction: the next hop's neighbour entry is switched to another MAC (the event a replaced
  gateway causes) and the time from that change to the write of ``remote_mac`` is taken from
  the file's modification time, ``--reactions`` times, alternating MACs;
* idle: CPU time (user + system, /proc/PID/stat) the process spends in ``--idle`` seconds
  without events, as a share of one core;
* peak RSS of the watch process (VmHWM) at the end.

Goals: reaction median <= 300 ms and max <= 1 s (debounce included), idle CPU < 0.1 % of a
core, peak RSS <= 60 MB. The machine's load average is printed before and after, since other
processes skew the figures.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.netns.lab import CLONE_NEWNET, NETNS_DIR, Lab, unavailable_reason

H_MAC, R_MAC = "02:00:00:00:00:01", "02:00:00:00:00:fe"
OTHER_MAC = "02:00:00:00:00:fd"
CONFIG = '[targets.collector]\nremote_ip = "10.0.2.2"\n'


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def enter(ns: str) -> None:
    fd = os.open(NETNS_DIR / ns, os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            os._exit(126)
    finally:
        os.close(fd)


def sandbox(root: Path) -> Path:
    """A configfs root with one enabled target, as 6.12 prints it (values end with \\n)."""
    t = root / "netconsole/collector"
    (t / "userdata").mkdir(parents=True)
    for attr, value in {
        "enabled": "1", "dev_name": "eth0", "local_ip": "10.0.1.1", "local_port": "6665",
        "remote_ip": "10.0.2.2", "remote_port": "6666", "remote_mac": R_MAC,
        "local_mac": H_MAC, "extended": "0", "release": "0",
    }.items():
        (t / attr).write_text(value + "\n")
    return t


def baseline(runs: int = 10) -> tuple[float, float]:
    walls, rss = [], []
    for _ in range(runs):
        start = time.perf_counter()
        pid = os.spawnv(os.P_NOWAIT, sys.executable, [sys.executable, "-c", "pass"])
        _, _, usage = os.wait4(pid, 0)
        walls.append(time.perf_counter() - start)
        rss.append(usage.ru_maxrss / 1024)
    return statistics.median(walls), statistics.median(rss)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reactions", type=int, default=20)
    ap.add_argument("--idle", type=float, default=60.0)
    args = ap.parse_args()
    reason = unavailable_reason()
    if reason is not None:
        print(f"bench/watch.py: {reason}", file=sys.stderr)
        return 77
    print(f"load average before: {load()}")
    base_wall, base_rss = baseline()
    print(f"python -c pass (baseline): {base_wall * 1000:.0f} ms, peak RSS {base_rss:.1f} MB")

    import tempfile

    with Lab() as lab, tempfile.TemporaryDirectory() as tmp:
        h, r, c = lab.netns("h"), lab.netns("r"), lab.netns("c")
        lab.veth(h, "eth0", r, "eth0", mac_a=H_MAC, mac_b=R_MAC)
        lab.veth(r, "eth1", c, "eth0")
        lab.addr(h, "eth0", "10.0.1.1/24")
        lab.addr(r, "eth0", "10.0.1.254/24")
        lab.addr(r, "eth1", "10.0.2.254/24")
        lab.addr(c, "eth0", "10.0.2.2/24")
        lab.ip(h, "route", "add", "default", "via", "10.0.1.254")
        lab.neigh(h, "replace", "10.0.1.254", "lladdr", R_MAC, "dev", "eth0", "nud", "reachable")
        root = Path(tmp) / "config"
        target = sandbox(root)
        config = Path(tmp) / "nc.toml"
        config.write_text(CONFIG)
        env = dict(os.environ, NETCONSOLECTL_CONFIGFS_ROOT=str(root))
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "netconsolectl", "watch", str(config)],
            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=lambda: enter(h),
        )
        assert proc.stderr is not None
        lines: list[str] = []
        ready = threading.Event()

        def reader() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append(line.rstrip("\n"))
                if "watching" in line:
                    ready.set()

        threading.Thread(target=reader, daemon=True).start()
        try:
            if not ready.wait(60):
                print("watch did not become ready:\n" + "\n".join(lines), file=sys.stderr)
                return 1
            print(f"watch ready after {(time.perf_counter() - start) * 1000:.0f} ms: "
                  f"{lines[-1]}")

            reactions = []
            mac_file = target / "remote_mac"
            for i in range(args.reactions):
                mac = OTHER_MAC if i % 2 == 0 else R_MAC
                time.sleep(0.3)  # apart from the previous burst
                t0 = time.time_ns()
                lab.neigh(h, "replace", "10.0.1.254", "lladdr", mac, "dev", "eth0", "nud",
                          "reachable")
                deadline = time.monotonic() + 5
                while mac_file.read_text().strip() != mac:
                    if time.monotonic() > deadline:
                        print("no reaction within 5 s:\n" + "\n".join(lines[-5:]),
                              file=sys.stderr)
                        return 1
                    time.sleep(0.001)
                reactions.append((mac_file.stat().st_mtime_ns - t0) / 1e6)
            med, worst = statistics.median(reactions), max(reactions)
            ok = med <= 300 and worst <= 1000
            print(f"reaction, neighbour change -> remote_mac written ({len(reactions)} runs): "
                  f"median {med:.0f} ms, min {min(reactions):.0f} ms, max {worst:.0f} ms "
                  f"(goal: median <= 300, max <= 1000) {'OK' if ok else 'MISSED'}")

            time.sleep(1)
            c0, w0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(args.idle)
            used, wall = cpu_seconds(proc.pid) - c0, time.monotonic() - w0
            share = used / wall * 100
            print(f"idle {wall:.0f} s: {used * 1000:.0f} ms CPU = {share:.3f} % of a core "
                  f"(goal < 0.1 %) {'OK' if share < 0.1 else 'MISSED'}")
            rss = hwm_mb(proc.pid)
            print(f"peak RSS of watch: {rss:.1f} MB (goal <= 60 MB; python -c pass "
                  f"{base_rss:.1f} MB) {'OK' if rss <= 60 else 'MISSED'}")
        finally:
            proc.terminate()
            code = proc.wait(10)
            print(f"watch exited {code} on SIGTERM")
    print(f"load average after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
