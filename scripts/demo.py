#!/usr/bin/env python3
"""netconsolectl end to end, without touching this machine: boot a throwaway VM, send its kernel
log to this host.

    scripts/demo            # installs what it needs, then ~2-3 minutes with an emulated CPU

What happens:
  1. on this host, `netconsolectl listen` waits on 127.0.0.1 (a free UDP port);
  2. Debian's 6.12 kernel boots in QEMU (virtme-ng) with this machine's files read-only;
  3. in the VM, as root: `netconsolectl setup`, `netconsolectl loglevel 8`,
     `netconsolectl add demo --remote-ip 10.0.2.2 --remote-port PORT --extended ...` (the
     interface, source address and gateway MAC are discovered), `netconsolectl list`, and a
     message written to /dev/kmsg;
  4. QEMU's user networking delivers 10.0.2.2:PORT to 127.0.0.1:PORT, where `listen` prints
     the message.

Needs qemu-system-x86, linux-image-6.12-amd64 and virtme-ng: the scripts/demo wrapper installs
them first (scripts/setup-env, the install step scripts/test uses too), then runs this file.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_PYTHON = REPO / os.environ.get("NETCONSOLECTL_VENV", ".venv") / "bin" / "python"


def _reexec_in_venv() -> None:
    """Run under the project's virtualenv (it has netconsolectl and virtme-ng) when we can."""
    try:
        import netconsolectl  # noqa: F401
    except ImportError:
        if VENV_PYTHON.exists() and Path(sys.executable) != VENV_PYTHON:
            os.execv(VENV_PYTHON, [str(VENV_PYTHON), __file__, *sys.argv[1:]])
        sys.exit("scripts/demo: netconsolectl is not installed; run scripts/demo (it installs "
                 "what it needs into .venv), or pip install -e '.[vm]'")


_reexec_in_venv()
sys.path.insert(0, str(REPO))

from tests.kernel import vm  # noqa: E402

MESSAGE = "hello from the netconsolectl demo VM"


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def guest_script(port: int) -> str:
    py = shlex.quote(sys.executable)
    return f"""
set -e
nc() {{ echo "vm# netconsolectl $*"; {py} -m netconsolectl "$@"; }}
# VM plumbing: QEMU's user network has no reliable DHCP under emulation.
nic=$(for d in /sys/class/net/*/device; do basename "$(dirname "$d")"; done | head -n1)
ip link set "$nic" name {vm.GUEST_NIC}
ip addr add {vm.GUEST_IP}/24 dev {vm.GUEST_NIC}
ip link set {vm.GUEST_NIC} up
ip route add default via {vm.HOST_IP}
echo "vm: network up: {vm.GUEST_NIC} {vm.GUEST_IP}/24, gateway {vm.HOST_IP} (this host)"
nc setup
nc loglevel 8
nc add demo --remote-ip {vm.HOST_IP} --remote-port {port} --extended --userdata host=demo-vm
nc list
echo "vm# echo '{MESSAGE}' > /dev/kmsg"
echo '{MESSAGE}' > /dev/kmsg
sleep 1
"""


def main() -> int:
    reason = vm.unavailable_reason()
    if reason:
        say(reason)
        return 69
    with tempfile.TemporaryDirectory(prefix="netconsolectl-demo-") as tmp:
        listen = subprocess.Popen(
            [sys.executable, "-m", "netconsolectl", "listen", "--bind", "127.0.0.1",
             "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert listen.stderr is not None and listen.stdout is not None
        ready = listen.stderr.readline()
        m = re.search(r"listening on udp \S*:(\d+)", ready)
        if not m:
            listen.kill()
            say(f"`netconsolectl listen` did not start: {ready.strip()}")
            return 1
        port = int(m.group(1))
        say(f"host: `netconsolectl listen` is waiting on 127.0.0.1:{port} "
            f"(the VM reaches it as {vm.HOST_IP}:{port})")
        say(f"booting {vm.find_kernel()} under QEMU (emulated CPU: give it a minute or two)")
        start = time.monotonic()
        boot = vm.boot(["sh", "-c", guest_script(port)], rwdir=Path(tmp), cwd=REPO,
                       log=Path(tmp) / "vm.log", timeout=900, echo="  ")
        say(f"the VM powered off after {time.monotonic() - start:.0f} s (exit {boot.returncode})")
        listen.send_signal(signal.SIGINT)
        try:
            out, err = listen.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            listen.kill()
            out, err = listen.communicate()
    say("host: what `netconsolectl listen` received:")
    for line in out.splitlines():
        print(f"  {line}")
    if MESSAGE in out:
        say("the message written in the VM arrived on this host over netconsole.")
        return 0
    say("the message did not arrive; the listener said:\n" + err)
    return 1


if __name__ == "__main__":
    sys.exit(main())
