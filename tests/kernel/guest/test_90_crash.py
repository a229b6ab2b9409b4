"""The guest kernel's crash reports reach ``netconsolectl listen`` on the host as crash events.

A hung task (a write to a frozen ext4 RAM disk, with kernel.hung_task_timeout_secs=2) and an
OOM kill (dd in a memory cgroup limited to 32M) are triggered here, with an extended target
pointed at listen's port; the panic (``echo c > /proc/sysrq-trigger``) can only be the very
last thing the guest does, so this test writes the script for it (``panic.sh`` in the shared
directory) and tests/kernel/harness.py runs it after the guest pytest has finished.
tests/kernel/test_listen.py checks that listen reported each as one crash event of its kind.

The formats are the same from 5.x to 7.x, and what a kernel lacks (brd, fsfreeze, the memory
controller) skips with the reason. What differs is how the panic gets out: see
:data:`NBCON_PANIC`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.kernel.guest.conftest import (
    GATEWAY_MAC,
    GUEST_IP,
    HOST_IP,
    NIC,
    RECORDER,
    SHARED,
    Cli,
    Wire,
    sh,
)
from tests.kernel.guest.test_10_targets import explicit

pytestmark = pytest.mark.usefixtures("netconsole")

CRASH_PORT = 6673  # the source port of the target the crash reports leave from
PANIC_PORT = 6674  # and of the one made for the panic after the run

HUNG = """
set -e
sysctl -qw kernel.hung_task_timeout_secs=2 kernel.hung_task_warnings=1
modprobe brd rd_nr=1 rd_size=16384
mkfs.ext4 -q -F /dev/ram0
mkdir -p /tmp/frozen && mount /dev/ram0 /tmp/frozen
fsfreeze -f /tmp/frozen
sh -c 'echo x > /tmp/frozen/f' &
w=$!
found=0
for i in $(seq 90); do
  if dmesg | grep -q 'blocked for more than'; then found=1; break; fi
  sleep 1
done
fsfreeze -u /tmp/frozen; wait $w; umount /tmp/frozen; rmmod brd || true
sysctl -qw kernel.hung_task_timeout_secs=120 kernel.hung_task_warnings=10
test $found = 1
"""

OOM = """
set -e
grep -q cgroup2 /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
mkdir -p /sys/fs/cgroup/nctl-oom
echo 32M > /sys/fs/cgroup/nctl-oom/memory.max
echo 0 > /sys/fs/cgroup/nctl-oom/memory.swap.max 2>/dev/null || true
sh -c 'echo $$ > /sys/fs/cgroup/nctl-oom/cgroup.procs;
       exec dd if=/dev/zero of=/dev/null bs=128M count=1' && exit 3 || true
dmesg | grep -q 'Killed process'
rmdir /sys/fs/cgroup/nctl-oom
"""


def _needs(*paths: str) -> None:
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        pytest.skip(f"this kernel/guest lacks {', '.join(missing)}")


def test_hung_task_and_oom_reach_listen(cli: Cli, wire: Wire,
                                        names: Callable[[str], str]) -> None:
    port = wire.listen_port
    assert port is not None, "netconsolectl listen did not start on the host (see its test)"
    _needs("/proc/sys/kernel/hung_task_timeout_secs", "/sbin/fsfreeze", "/sbin/mkfs.ext4")
    name = names("crash")
    r = cli("add", name, *explicit(port), "--local-port", str(CRASH_PORT), "--extended")
    assert r.code == 0, str(r)
    sh("dmesg -n 8")
    sh(HUNG)
    RECORDER.add(kind="crash-expect", nodeid=wire.nodeid, crash="hung_task")
    from pathlib import Path

    if "memory" in Path("/sys/fs/cgroup/cgroup.controllers").read_text().split():
        sh(OOM)
        RECORDER.add(kind="crash-expect", nodeid=wire.nodeid, crash="oom")
    # the panic, after everything else (harness.py runs this script once pytest is done)
    (SHARED / "panic.sh").write_text(panic_script(port))
    RECORDER.add(kind="crash-expect", nodeid=wire.nodeid, crash="panic")


#: Where the netconsole console is an nbcon console (7.x: "N" among its /proc/consoles flags),
#: the kernel hands it the panic only in panic()'s very last flush, nbcon_atomic_flush_unsafe(),
#: which comes after ``if (panic_timeout != 0) emergency_restart();``: with virtme-ng's
#: panic=-1 (or any reboot timeout) nothing of the panic would leave the machine. So there the
#: script sets kernel.panic=0 (the setting netconsolectl recommends) and arms QEMU's i6300esb
#: watchdog, which resets the hung guest (QEMU's -no-reboot then ends it) once nothing pets it:
#: after 30 s, since the final flush under an emulated CPU takes seconds (a 5 s watchdog cut
#: the panic short after its first lines).
#: Without the watchdog it keeps panic=-1: the VM still ends, and the host test fails.
#: A legacy console (6.x) sends each panic line as it is printed, before any restart; there
#: kernel.panic=5 only leaves QEMU time to put the last queued frames on the wire before the
#: reset (with panic=-1 a loaded host lost the tail of 6.1's panic).
NBCON_PANIC = """
if grep -Eq '^netcon[^ ]* +[^ ]+ +\\([^)]*N' /proc/consoles; then
  if modprobe i6300esb heartbeat=30 && exec 3>/dev/watchdog; then
    sysctl -qw kernel.panic=0
  fi
else
  sysctl -qw kernel.panic=5
fi
"""


def panic_script(port: int) -> str:
    """The shell script that makes an extended target to ``port`` and panics the kernel."""
    t = "/sys/kernel/config/netconsole/crash-panic"
    return (
        f"mkdir {t} && echo {NIC} > {t}/dev_name && echo {GUEST_IP} > {t}/local_ip"
        f" && echo {PANIC_PORT} > {t}/local_port && echo {HOST_IP} > {t}/remote_ip"
        f" && echo {GATEWAY_MAC} > {t}/remote_mac && echo {port} > {t}/remote_port"
        f" && echo 1 > {t}/extended && echo 1 > {t}/enabled && dmesg -n 8 || exit 1\n"
        + NBCON_PANIC
        + "echo c > /proc/sysrq-trigger\n")
