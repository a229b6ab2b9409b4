"""Boot a real Linux kernel under QEMU with virtme-ng and receive what its netconsole sends.

Shared by the real-kernel test tier (tests/kernel) and ``scripts/demo``. Nothing here imports
netconsolectl: it only starts the VM and listens on the host.

How the pieces fit (measured on Debian's 6.12 kernel; the docstring of
tests/kernel/test_kernel.py describes the test tier built on it):

- ``vng`` (PyPI virtme-ng) boots the kernel with the host's root filesystem shared read-only;
  ``--rwdir`` adds one host directory the guest can write, which is how results come back.
- QEMU user networking (slirp): the guest is 10.0.2.15/24, and UDP sent to 10.0.2.2:PORT (via
  the gateway MAC 52:55:0a:00:02:02) arrives on the host at 127.0.0.1:PORT; fec0::2 maps to
  [::1]. A :class:`Receiver` bound there before the boot sees exactly what the guest kernel sent.
- KVM is not assumed: nested virtualisation fails on many CI machines, so QEMU emulates the CPU
  (``--disable-kvm``) unless ``NETCONSOLECTL_VM_KVM=1``. Emulated Python is ~100x slower, so
  callers boot once and run everything inside that one boot.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import selectors
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

GUEST_IP = "10.0.2.15"
HOST_IP = "10.0.2.2"  # slirp's alias for the host's loopback
GUEST_IP6 = "fec0::15"
HOST_IP6 = "fec0::2"
GATEWAY_MAC = "52:55:0a:00:02:02"  # slirp answers ARP for 10.0.2.2 with this MAC
GUEST_NIC = "eth0"  # the guest setup renames its slirp NIC to this
# With ``loop_nics``: the slirp NIC gets GUEST_MAC, and two more virtio NICs, joined on a
# QEMU-internal hub (virtme-ng's ``--network loop``: two ``-netdev hubport`` on one hub), get
# the next two MACs (virtme-ng increments the last octet per NIC). They carry real netconsole
# frames between each other, which veth cannot (no netpoll).
GUEST_MAC = "52:54:00:12:34:10"
LOOP_SEND_MAC = "52:54:00:12:34:11"
LOOP_RECV_MAC = "52:54:00:12:34:12"

QEMU = "qemu-system-x86_64"
INSTALL_HINT = (
    "install them with: apt-get install qemu-system-x86 linux-image-6.12-amd64 "
    "linux-image-amd64 kmod busybox-static; pip install virtme-ng; scripts/fetch-kernels "
    "(scripts/test does all three)"
)
#: The kernel series the tier boots, oldest first: Debian 12's default kernel
#: (linux-image-amd64, 6.1) and its 6.12 LTS (linux-image-6.12-amd64), installed in /boot;
#: the newest 6.18 LTS and the newest 7.x from Debian trixie-backports, which
#: scripts/fetch-kernels unpacks into its cache (:func:`kernel_cache`) without installing them.
SERIES = ("6.1", "6.12", "6.18", "7")
#: The series only scripts/fetch-kernels provides (the others are Debian 12 packages).
FETCHED = ("6.18", "7")


def kernel_cache() -> Path:
    """Where scripts/fetch-kernels keeps the kernels it fetched (the same rule as the script:
    ``$NETCONSOLECTL_KERNEL_CACHE``, else /var/cache/netconsolectl/kernels as root, else
    ``$XDG_CACHE_HOME/netconsolectl/kernels``)."""
    env = os.environ.get("NETCONSOLECTL_KERNEL_CACHE")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/netconsolectl/kernels")
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "netconsolectl" / "kernels"


def find_kernel(series: str = "6.12") -> Path | None:
    """The newest ``vmlinuz-<series>.*`` in /boot or the fetch cache
    (``$NETCONSOLECTL_VM_KERNEL`` overrides it)."""
    env = os.environ.get("NETCONSOLECTL_VM_KERNEL")
    if env:
        return Path(env)
    candidates = glob.glob(f"/boot/vmlinuz-{series}.*")
    candidates += glob.glob(str(kernel_cache() / f"{series}.*" / f"vmlinuz-{series}.*"))
    found = [p for p in candidates
             if re.match(rf"vmlinuz-{re.escape(series)}\.\d", Path(p).name)]
    found.sort(key=_version_key)
    return Path(found[-1]) if found else None


def find_kernels() -> list[tuple[str, Path | None]]:
    """(series, image or None) for every series the tier boots.

    ``$NETCONSOLECTL_VM_KERNELS`` (comma-separated series, e.g. ``6.12``) narrows the list;
    ``$NETCONSOLECTL_VM_KERNEL`` boots that one image only.
    """
    env = os.environ.get("NETCONSOLECTL_VM_KERNEL")
    if env:
        return [(kernel_release(Path(env)), Path(env))]
    wanted = os.environ.get("NETCONSOLECTL_VM_KERNELS")
    series = [s.strip() for s in wanted.split(",") if s.strip()] if wanted else list(SERIES)
    return [(s, find_kernel(s)) for s in series]


def _version_key(path: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", Path(path).name)]


def kernel_release(image: Path) -> str:
    """``6.12.117+deb12-amd64`` for ``/boot/vmlinuz-6.12.117+deb12-amd64``."""
    return image.name.removeprefix("vmlinuz-")


def find_vng() -> Path | None:
    """virtme-ng's ``vng``: next to this Python (the test virtualenv) first, then $PATH."""
    here = Path(sys.executable).parent / "vng"
    if here.is_file() and os.access(here, os.X_OK):
        return here
    which = shutil.which("vng")
    return Path(which) if which else None


def unavailable_reason(image: Path | None = None, series: str = "6.12") -> str | None:
    """Why this machine cannot boot the test VM with ``image`` (default: the newest of
    ``series``), or None when it can."""
    if platform.machine() != "x86_64":
        return f"the real-kernel tier boots an x86_64 kernel; this machine is {platform.machine()}"
    missing = []
    if shutil.which(QEMU) is None:
        missing.append(f"QEMU ({QEMU})")
    image = image or find_kernel(series)
    if image is None or not image.exists():
        where = f"{kernel_cache()}/{series}.*" if series in FETCHED else "/boot"
        missing.append(f"a {series} kernel image ({image or f'vmlinuz-{series}.* in {where}'})")
        image = None
    elif not os.access(image, os.R_OK):
        return f"kernel image {image} is not readable by this user"
    if find_vng() is None:
        missing.append("virtme-ng (vng)")
    if missing:
        return "cannot boot the test VM: missing " + ", ".join(missing) + "; " + INSTALL_HINT
    modules = Path("/lib/modules") / kernel_release(image) if image else None
    if modules is not None and not modules.is_dir():
        return f"kernel modules for {image} are missing ({modules}); reinstall the kernel package"
    return None


# -- host receiver --------------------------------------------------------------------------


@dataclass(frozen=True)
class Datagram:
    """One UDP payload received on the host."""

    port: int
    family: str  # "ipv4" or "ipv6"
    data: bytes
    at: float  # time.monotonic() on arrival


class Receiver:
    """UDP sockets on the host loopback that record every datagram, from before the boot.

    ``ports`` / ``ports6`` ask for that many ephemeral ports on 127.0.0.1 / ::1;
    ``fixed`` binds specific 127.0.0.1 ports as well (the demo uses a well-known one).
    """

    def __init__(self, ports: int = 0, ports6: int = 0, fixed: Sequence[int] = ()) -> None:
        self._sel = selectors.DefaultSelector()
        self._socks: list[socket.socket] = []
        self.ports: list[int] = [self._bind(socket.AF_INET, "127.0.0.1", p) for p in fixed]
        self.ports += [self._bind(socket.AF_INET, "127.0.0.1", 0) for _ in range(ports)]
        self.ports6: list[int] = [self._bind(socket.AF_INET6, "::1", 0) for _ in range(ports6)]
        self.datagrams: list[Datagram] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="netconsole-receiver", daemon=True)
        self._thread.start()

    def _bind(self, family: socket.AddressFamily, addr: str, port: int) -> int:
        s = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        # Room for a burst (a boot target replays the kernel log when the module loads).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((addr, port))
        s.setblocking(False)
        bound = int(s.getsockname()[1])
        self._socks.append(s)
        name = "ipv6" if family == socket.AF_INET6 else "ipv4"
        self._sel.register(s, selectors.EVENT_READ, (bound, name))
        return bound

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.2):
                port, family = key.data
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                while True:
                    try:
                        data = sock.recv(65535)
                    except BlockingIOError:
                        break
                    with self._lock:
                        self.datagrams.append(Datagram(port, family, data, time.monotonic()))

    def received(self) -> list[Datagram]:
        with self._lock:
            return list(self.datagrams)

    def close(self, drain: float = 0.5) -> list[Datagram]:
        """Keep listening ``drain`` seconds for stragglers, then stop; returns everything."""
        time.sleep(drain)
        self._stop.set()
        self._thread.join()
        for s in self._socks:
            self._sel.unregister(s)
            s.close()
        return self.received()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._stop.is_set():
            self.close(drain=0)


# -- the boot -------------------------------------------------------------------------------


def boot_param(port: int, *, extended: bool = True) -> str:
    """A ``netconsole=`` value sending from the guest NIC to ``HOST_IP:port``.

    Debian builds netconsole as a module, which only sees the parameter as
    ``netconsole.netconsole=`` on the kernel command line (modprobe passes it on when the
    module loads); a bare ``netconsole=`` is handed to init and ignored. See :func:`boot`.
    """
    plus = "+" if extended else ""
    return f"{plus}6665@{GUEST_IP}/{GUEST_NIC},{port}@{HOST_IP}/{GATEWAY_MAC}"


@dataclass
class BootResult:
    returncode: int
    seconds: float
    log: Path
    timed_out: bool = False
    command: list[str] = field(default_factory=list)

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def vng_command(
    guest_argv: Sequence[str],
    *,
    rwdir: Path,
    cwd: Path,
    append: Sequence[str] = (),
    env: dict[str, str] | None = None,
    memory: str = "1G",
    image: Path | None = None,
    loop_nics: bool = False,
) -> list[str]:
    """The ``vng`` invocation that boots ``image`` (default: the 6.12 one) and runs
    ``guest_argv`` as root."""
    vng = find_vng()
    image = image or find_kernel()
    if vng is None or image is None:
        raise RuntimeError(unavailable_reason() or "virtme-ng or kernel missing")
    cmd = [str(vng)]
    if os.environ.get("NETCONSOLECTL_VM_KVM") != "1":
        cmd.append("--disable-kvm")
    # No DHCP: slirp's lease does not arrive reliably under emulation; the guest setup
    # configures the address statically.
    cmd += ["--network", "user"]
    if loop_nics:
        cmd += ["--network", "loop", "--net-mac-address", GUEST_MAC]
    cmd += ["--no-dhcp", "-r", str(image), "--user", "root",
            "--memory", memory, "--rwdir", str(rwdir), "--cwd", str(cwd)]
    for a in append:
        cmd += ["--append", a]
    prefix = ["env", *(f"{k}={v}" for k, v in (env or {}).items())] if env else []
    cmd += ["--exec", shlex.join([*prefix, *guest_argv])]
    return cmd


def boot(
    guest_argv: Sequence[str],
    *,
    rwdir: Path,
    cwd: Path,
    log: Path,
    append: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 1500.0,
    echo: str | None = None,
    image: Path | None = None,
    loop_nics: bool = False,
) -> BootResult:
    """Boot once, run ``guest_argv`` in the guest, return when the VM has powered off.

    The guest's stdout and stderr go to ``log``, and to our stdout prefixed with ``echo`` when
    it is given. ``rwdir`` must exist; the guest sees it at the same path, writable.
    """
    cmd = vng_command(guest_argv, rwdir=rwdir, cwd=cwd, append=append, env=env, image=image,
                      loop_nics=loop_nics)
    vng_env = dict(os.environ)
    # vng runs its helpers (virtme-run, virtme-ng-init) by name from its own bin directory.
    vng_env["PATH"] = f"{Path(cmd[0]).parent}{os.pathsep}{vng_env.get('PATH', '')}"
    start = time.monotonic()
    timed_out = False
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=vng_env, start_new_session=True)
        assert proc.stdout is not None
        reader = threading.Thread(target=_copy, args=(proc.stdout, out, echo), daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, 9)  # QEMU is in vng's session; take both down
            rc = proc.wait()
        reader.join(timeout=10)
    return BootResult(rc, time.monotonic() - start, log, timed_out, cmd)


def _copy(src: IO[bytes], dst: IO[bytes], echo: str | None) -> None:
    for line in iter(src.readline, b""):
        dst.write(line)
        dst.flush()
        if echo is not None:
            sys.stdout.buffer.write(echo.encode() + line)
            sys.stdout.flush()
