"""Regenerate tests/data/crashes-6.12.jsonl: crash reports as a real 6.12 kernel sends them.

    python -m tests.kernel.capture_crashes [OUTPUT]

Boots the test VM once (tests/kernel/vm.py) with one extended target pointed at a host port
(console loglevel 8, so nothing is filtered) and, in the guest, as root:

1. hung_task: a write to a frozen ext4 filesystem on a RAM disk blocks in D state; with
   kernel.hung_task_timeout_secs=2 khungtaskd reports it ("INFO: task ... blocked for more
   than 2 seconds"), then the filesystem is thawed;
2. oom: a process in a memory cgroup with memory.max=32M asks for 128 MiB (dd bs=128M): the
   OOM killer reports and kills it ("Memory cgroup out of memory: Killed process");
3. panic: ``echo c > /proc/sysrq-trigger`` ("Kernel panic - not syncing: sysrq triggered
   crash"); virtme-ng boots with panic=-1 and QEMU -no-reboot, so the VM ends there.

Each JSON line of the output is ``{"step", "hex"}``: the step running when the datagram
arrived and the payload. tests/unit/test_receiver_captured.py replays them through the receiver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.kernel import vm

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = REPO / "tests/data/crashes-6.12.jsonl"

#: One shell script per step, run in the guest as root; the step name is written to the shared
#: directory first so the host can tell which step a datagram belongs to.
STEPS = {
    "hung_task": """
        sysctl -qw kernel.hung_task_timeout_secs=2 kernel.hung_task_warnings=1
        mnt=/tmp/frozen
        modprobe brd rd_nr=1 rd_size=16384
        mkfs.ext4 -q -F /dev/ram0 && mkdir -p $mnt && mount /dev/ram0 $mnt
        fsfreeze -f $mnt
        sh -c "echo x > $mnt/f" &
        w=$!
        for i in $(seq 60); do dmesg | grep -q 'blocked for more than' && break; sleep 1; done
        sleep 2
        fsfreeze -u $mnt; wait $w; umount $mnt
    """,
    "oom": """
        grep -q cgroup2 /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup
        echo +memory > /sys/fs/cgroup/cgroup.subtree_control
        mkdir -p /sys/fs/cgroup/oomtest
        echo 32M > /sys/fs/cgroup/oomtest/memory.max
        echo 0 > /sys/fs/cgroup/oomtest/memory.swap.max 2>/dev/null || true
        sh -c 'echo $$ > /sys/fs/cgroup/oomtest/cgroup.procs;
               exec dd if=/dev/zero of=/dev/null bs=128M count=1' || true
        sleep 2
    """,
    "panic": "echo c > /proc/sysrq-trigger",
}


def guest(shared: Path, port: int) -> None:
    """Inside the VM: one target, then each step in turn (the last one does not return)."""
    nic = next(n for n in sorted(os.listdir("/sys/class/net"))
               if n != "lo" and Path(f"/sys/class/net/{n}/device").exists())
    g = vm.GUEST_NIC
    t = "/sys/kernel/config/netconsole/crash"
    subprocess.run(
        f"ip link set {nic} name {g} && ip addr add {vm.GUEST_IP}/24 dev {g}"
        f" && ip link set {g} up && modprobe netconsole"
        f" && mount -t configfs none /sys/kernel/config && mkdir {t}"
        f" && echo {g} > {t}/dev_name && echo {vm.GUEST_IP} > {t}/local_ip"
        f" && echo {vm.HOST_IP} > {t}/remote_ip && echo {vm.GATEWAY_MAC} > {t}/remote_mac"
        f" && echo {port} > {t}/remote_port && echo 1 > {t}/extended && echo 1 > {t}/enabled"
        " && dmesg -n 8",
        shell=True, check=True)
    for step, script in STEPS.items():
        (shared / "step").write_text(step)
        time.sleep(0.5)
        subprocess.run(["sh", "-ec", script], check=True)
        time.sleep(1.0)


def capture(output: Path) -> int:
    reason = vm.unavailable_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 69
    with tempfile.TemporaryDirectory(prefix="netconsolectl-crashes-") as tmp:
        shared = Path(tmp)
        rx = vm.Receiver(ports=1)
        steps: list[tuple[float, str]] = []
        cmd = vm.vng_command([sys.executable, "-m", "tests.kernel.capture_crashes", "--guest",
                              str(shared), str(rx.ports[0])], rwdir=shared, cwd=REPO)
        env = dict(os.environ)
        env["PATH"] = f"{Path(cmd[0]).parent}{os.pathsep}{env.get('PATH', '')}"
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                    stdout=open(shared / "guest.log", "wb"),  # noqa: SIM115
                                    stderr=subprocess.STDOUT, env=env)
            last = ""
            while proc.poll() is None:
                try:
                    step = (shared / "step").read_text()
                except OSError:
                    step = ""
                if step != last:
                    steps.append((time.monotonic(), step))
                    last = step
                time.sleep(0.05)
        finally:
            datagrams = rx.close(drain=1.0)
        log = (shared / "guest.log").read_text(errors="replace")
    lines = []
    for d in datagrams:
        step = ""
        for at, name in steps:
            if at <= d.at:
                step = name
        if step:
            lines.append(json.dumps({"step": step, "hex": d.data.hex()}))
    output.write_text("\n".join(lines) + "\n")
    got = {json.loads(line)["step"] for line in lines}
    print(f"{len(lines)} datagrams written to {output}; steps seen: {sorted(got)}")
    if got != set(STEPS):
        print(log[-3000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--guest":
        guest(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(capture(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT))
