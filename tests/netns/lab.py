"""Throwaway network namespaces for tests and benchmarks that need real kernel networking.

Every namespace is named ``nctl-<pid>-<n>-<label>``; :meth:`Lab.cleanup` deletes the ones this
lab created (deleting a namespace also destroys its veth ends), and :func:`sweep_orphans`
removes those left behind by processes that no longer exist. Links are created directly inside
the namespaces, so the test host's own network is never touched, and traffic only flows
between namespaces a lab created.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

NETNS_DIR = Path("/run/netns")
# `ip netns exec NS` bind-mounts the files of /etc/netns/NS over /etc (a namespace's own hosts).
NETNS_ETC = Path("/etc/netns")
CLONE_NEWNET = 0x40000000
_NAME = re.compile(r"^nctl-(\d+)-\d+-")
_counter = itertools.count()


def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN) to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2's `ip`"
    name = f"nctl-{os.getpid()}-probe-ns"
    res = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if res.returncode != 0:
        return f"cannot create a network namespace: {res.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def sweep_orphans() -> None:
    """Delete lab namespaces whose creating process is gone (a killed earlier run)."""
    try:
        names = os.listdir(NETNS_DIR)
    except OSError:
        return
    for name in names:
        m = _NAME.match(name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            shutil.rmtree(NETNS_ETC / name, ignore_errors=True)


class Lab:
    """A set of namespaces owned by one test; use as a context manager or call cleanup()."""

    def __init__(self) -> None:
        self.namespaces: list[str] = []

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
        self.namespaces.clear()
        with contextlib.suppress(OSError):  # only when no other lab still uses it
            NETNS_ETC.rmdir()

    # -- building ---------------------------------------------------------------------------
    def netns(self, label: str) -> str:
        """A new namespace with lo up and IPv6 duplicate address detection off."""
        name = f"nctl-{os.getpid()}-{next(_counter)}-{label}"
        self.namespaces.append(name)  # before creation: cleanup must see half-made ones too
        self.run(["ip", "netns", "add", name])
        # DAD would keep fresh IPv6 addresses tentative for a second or two.
        for conf in ("all", "default"):
            self.sysctl(name, f"net.ipv6.conf.{conf}.accept_dad", "0")
        self.ip(name, "link", "set", "lo", "up")
        return name

    def sysctl(self, ns: str, key: str, value: str) -> None:
        path = "/proc/sys/" + key.replace(".", "/")
        self.in_netns(ns, lambda: Path(path).write_text(value))

    @staticmethod
    def run(argv: Sequence[str]) -> str:
        res = subprocess.run(list(argv), capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {res.stderr.strip() or res.returncode}")
        return res.stdout

    def ip(self, ns: str, *args: str) -> str:
        return self.run(["ip", "-n", ns, *args])

    def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str, *,
             mac_a: str | None = None, mac_b: str | None = None, up: bool = True) -> None:
        self.ip(ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b)
        for ns, ifname, mac in ((ns_a, if_a, mac_a), (ns_b, if_b, mac_b)):
            if mac:
                self.ip(ns, "link", "set", ifname, "address", mac)
            if up:
                self.ip(ns, "link", "set", ifname, "up")

    def addr(self, ns: str, ifname: str, *cidrs: str) -> None:
        for cidr in cidrs:
            extra = ["nodad"] if ":" in cidr else []
            self.ip(ns, "addr", "add", cidr, "dev", ifname, *extra)

    def hosts(self, ns: str, text: str) -> None:
        """Give ``ns`` its own /etc/hosts (seen by programs run with :meth:`exec`)."""
        d = NETNS_ETC / ns
        d.mkdir(parents=True, exist_ok=True)
        (d / "hosts").write_text(text)

    def mac(self, ns: str, ifname: str) -> str:
        out = self.ip(ns, "-br", "link", "show", ifname).split()
        return out[2]

    def neigh(self, ns: str, *args: str) -> str:
        return self.ip(ns, "neigh", *args)

    # -- running inside ---------------------------------------------------------------------
    @staticmethod
    def in_netns(ns: str, fn: Callable[[], T]) -> T:
        """Call ``fn`` on a thread that has entered ``ns`` (network namespaces are per thread)."""
        result: list[T] = []
        error: list[BaseException] = []

        def body() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(NETNS_DIR / ns, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns({ns}): {os.strerror(err)}")
                finally:
                    os.close(fd)
                result.append(fn())
            except BaseException as e:  # handed to the caller's thread
                error.append(e)

        thread = threading.Thread(target=body, name=f"netns {ns}")
        thread.start()
        thread.join()
        if error:
            raise error[0]
        return result[0]

    @staticmethod
    def exec(ns: str, argv: Sequence[str], *, timeout: float = 60,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a program inside ``ns`` (``ip netns exec`` also gives it that namespace's /sys)."""
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                              timeout=timeout, env=env)
