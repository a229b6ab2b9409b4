"""Regenerate tests/data/packets-6.12.jsonl: the exact datagrams a real 6.12 kernel sends.

    python -m tests.kernel.capture_packets [OUTPUT]

Boots the test VM once (tests/kernel/vm.py). In the guest, each case gets its own target, made
by raw configfs writes and pointed at its own host port; it is enabled alone, one message is
logged, and it is removed. The host records every datagram; each JSON line of the output is
``{"case", "port", "family", "hex"}`` in arrival order. Cases:

plain, plain-long (basic format; over 1000 bytes it is cut into 1000-byte datagrams),
extended, extended-userdata, release (release prepended), fragmented and fragmented-release
(extended record plus userdata over 1000 bytes: ``ncfrag=<offset>/<total>``),
extended-escape (tab, backslash, UTF-8 escaped as \\xNN), extended-level (``<3>``),
extended-kernel (a kernel record, facility 0), extended-dict (SUBSYSTEM=/DEVICE= lines of a
device message), extended-multiline (one /dev/kmsg write with a newline), ipv6-extended,
plain-userdata (userdata is not sent in the basic format).

The committed file came from such a boot. A new capture has the same datagrams up to the
sequence numbers, timestamps and ports, which tests/unit/test_receiver_captured.py pins, so
write new captures elsewhere (another kernel, new cases) rather than over it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.kernel import vm

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = REPO / "tests/data/packets-6.12.jsonl"

LONG = "PKT-LONG " + "".join(f"{i:04d}abcdefghij" for i in range(72))
NOTE = {"host": "guest1", "note": "n" * 150}


def _kmsg(text: str) -> Callable[[], None]:
    def send() -> None:
        fd = os.open("/dev/kmsg", os.O_WRONLY)
        try:
            os.write(fd, (text + "\n").encode())
        finally:
            os.close(fd)
    return send


def _sh(cmd: str) -> Callable[[], None]:
    def send() -> None:
        subprocess.run(cmd, shell=True, check=True)
    return send


# name, family, attributes written after the addresses, userdata, what to log
CASES: list[tuple[str, str, dict[str, str], dict[str, str], Callable[[], None]]] = [
    ("plain", "ipv4", {}, {}, _kmsg("PKT-PLAIN hello from the guest")),
    ("plain-long", "ipv4", {}, {}, _kmsg("PKT-PLAIN-LONG " + "x" * 1000)),
    ("extended", "ipv4", {"extended": "1"}, {}, _kmsg("PKT-EXTENDED hello")),
    ("extended-userdata", "ipv4", {"extended": "1"}, {"host": "guest1", "rack": "r7"},
     _kmsg("PKT-EXT-USERDATA hello")),
    ("release", "ipv4", {"extended": "1", "release": "1"}, {}, _kmsg("PKT-RELEASE hello")),
    ("fragmented", "ipv4", {"extended": "1"}, NOTE, _kmsg(LONG)),
    ("fragmented-release", "ipv4", {"extended": "1", "release": "1"}, NOTE, _kmsg(LONG)),
    ("extended-escape", "ipv4", {"extended": "1"}, {},
     _kmsg("PKT-ESC tab\there back\\slash \u00fc")),
    ("extended-level", "ipv4", {"extended": "1"}, {}, _kmsg("<3>PKT-LEVEL3 err level")),
    ("extended-kernel", "ipv4", {"extended": "1"}, {}, _sh("echo 1 > /proc/sys/vm/drop_caches")),
    ("extended-dict", "ipv4", {"extended": "1"}, {},
     _sh(f"ip link set {vm.GUEST_NIC} promisc on && ip link set {vm.GUEST_NIC} promisc off")),
    ("extended-multiline", "ipv4", {"extended": "1"}, {}, _kmsg("PKT-MULTI line one\nline two")),
    ("ipv6-extended", "ipv6", {"extended": "1"}, {}, _kmsg("PKT-IPV6 hello")),
    ("plain-userdata", "ipv4", {}, {"host": "guest1"},
     _kmsg("PKT-PLAIN-UD userdata not sent in basic format")),
]


def guest(config_path: Path) -> None:
    """Inside the VM: one target per case, enabled alone while its message is logged."""
    from netconsolectl.sender.configfs import ConfigFS

    config: dict[str, Any] = json.loads(config_path.read_text())
    nic = next(n for n in sorted(os.listdir("/sys/class/net"))
               if n != "lo" and Path(f"/sys/class/net/{n}/device").exists())
    g = vm.GUEST_NIC
    subprocess.run(
        f"ip link set {nic} name {g} && ip addr add {vm.GUEST_IP}/24 dev {g}"
        f" && ip -6 addr add {vm.GUEST_IP6}/64 dev {g} nodad && ip link set {g} up"
        " && modprobe netconsole && mount -t configfs none /sys/kernel/config",
        shell=True, check=True)
    fs = ConfigFS()
    for (name, family, attrs, userdata, send), port in zip(CASES, config["ports"], strict=True):
        t = f"capture-{name}"
        fs.mkdir(t)
        local, remote = ((vm.GUEST_IP6, vm.HOST_IP6) if family == "ipv6"
                         else (vm.GUEST_IP, vm.HOST_IP))
        for attr, value in {"dev_name": g, "local_ip": local, "remote_ip": remote,
                            "remote_mac": vm.GATEWAY_MAC, "remote_port": str(port),
                            **attrs}.items():
            fs.write(f"{t}/{attr}", value)
        for key, value in userdata.items():
            fs.mkdir(f"{t}/userdata/{key}")
            fs.write(f"{t}/userdata/{key}/value", value)
        fs.write(f"{t}/enabled", "1")
        # Only the case's own message: the enable banner is logged before the level is raised.
        subprocess.run("dmesg -n 8", shell=True, check=True)
        send()
        time.sleep(0.3)
        subprocess.run("dmesg -n 1", shell=True, check=True)
        fs.write(f"{t}/enabled", "0")
        for key in userdata:
            fs.rmdir(f"{t}/userdata/{key}")
        fs.rmdir(t)


def capture(output: Path) -> int:
    reason = vm.unavailable_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 69
    families = [c[1] for c in CASES]
    with tempfile.TemporaryDirectory(prefix="netconsolectl-capture-") as tmp:
        shared = Path(tmp)
        rx = vm.Receiver(ports=families.count("ipv4"), ports6=families.count("ipv6"))
        v4, v6 = iter(rx.ports), iter(rx.ports6)
        ports = [next(v6) if f == "ipv6" else next(v4) for f in families]
        (shared / "config.json").write_text(json.dumps({"ports": ports}))
        try:
            boot = vm.boot([sys.executable, "-m", "tests.kernel.capture_packets", "--guest",
                            str(shared / "config.json")],
                           rwdir=shared, cwd=REPO, log=shared / "guest.log", timeout=900)
        finally:
            datagrams = rx.close(drain=1.0)
        if boot.returncode != 0:
            print(f"the guest failed (exit {boot.returncode}):\n{boot.tail()}", file=sys.stderr)
            return 1
    case_of = {(p, f): c[0] for p, f, c in zip(ports, families, CASES, strict=True)}
    lines = [json.dumps({"case": case_of[(d.port, d.family)], "port": d.port,
                         "family": d.family, "hex": d.data.hex()})
             for d in datagrams if (d.port, d.family) in case_of]
    output.write_text("\n".join(lines) + "\n")
    got = {json.loads(line)["case"] for line in lines}
    missing = [c[0] for c in CASES if c[0] not in got]
    print(f"{len(lines)} datagrams written to {output}"
          + (f"; no datagram for {missing}" if missing else ""))
    return 1 if missing else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--guest":
        guest(Path(sys.argv[2]))
    else:
        sys.exit(capture(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT))
