"""The UDP server: socket set-up, the receive loop, signals, allowlist, shutdown."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import select
import signal
import socket
import struct
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

from netconsolectl.receiver.core import Processor
from netconsolectl.receiver.sources import Source

#: Receive buffer asked for; the kernel caps it at net.core.rmem_max unless we may force it.
DEFAULT_RCVBUF = 32 << 20
#: Datagrams handled between two looks at the clock and the signals.
BATCH = 256
#: How often pending fragments and gaps are checked, seconds.
TICK = 0.1
#: Seconds between two hand-overs of per-host figures (``--metrics``, ``--silence``).
PERIOD = 1.0
#: At most this long (s) is spent on datagrams already queued when a stop is requested.
DRAIN_ON_STOP = 1.0
#: Entries kept in each per-address cache (address to host string, allowlist verdicts); a cache
#: is simply emptied when full, so a flood of spoofed sources cannot grow it.
ADDRESS_CACHE = 8192
#: Largest UDP payload accepted (anything longer is truncated by the kernel and counted malformed).
MAX_DATAGRAM = 65535

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Handles a batch received at one time: payloads, their address keys, the receive time.
Handler = Callable[[list[bytes], list[Hashable], float], None]


def parse_cidrs(values: Iterable[str]) -> list[IPNetwork]:
    """``--allow`` values to networks; a bare address is a /32 or /128. Raises ValueError."""
    return [ipaddress.ip_network(v.strip(), strict=False) for v in values]


def open_socket(
    bind: str | None, port: int, rcvbuf: int = DEFAULT_RCVBUF, *, reuseport: bool = False
) -> socket.socket:
    """A bound UDP socket: dual-stack ``[::]`` by default (IPv4 as mapped addresses), IPv4-only
    when IPv6 is unavailable, or the family of ``bind``. With ``reuseport`` several such sockets
    share the port and the kernel spreads sources over them (:func:`spread_by_address`, else by
    a hash of the address and port pair), so one source always reaches the same socket. Raises
    OSError."""
    if bind is None or bind in ("", "::"):
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        except OSError:
            if bind == "::":
                raise
            return open_socket("0.0.0.0", port, rcvbuf, reuseport=reuseport)
        addr: tuple[str, int] = ("::", port)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            if reuseport:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            set_rcvbuf(sock, rcvbuf)
            sock.bind(addr)
        except OSError as e:
            sock.close()
            if bind is None and e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                # IPv6 disabled on this host (ipv6.disable=1 or no address): IPv4 only
                return open_socket("0.0.0.0", port, rcvbuf, reuseport=reuseport)
            raise
        sock.setblocking(False)
        return sock
    else:
        ip = ipaddress.ip_address(bind.split("%", 1)[0])
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        addr = (bind, port)
    try:
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        set_rcvbuf(sock, rcvbuf)
        sock.bind(addr)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


#: SO_ATTACH_REUSEPORT_CBPF (include/uapi/asm-generic/socket.h, Linux 4.5).
SO_ATTACH_REUSEPORT_CBPF = 51
#: Classic BPF loads at this offset and above read relative to the network (IP) header
#: (SKF_NET_OFF, include/uapi/linux/filter.h).
_SKF_NET_OFF = -0x100000
#: Fibonacci hashing: multiplying by 2^32 / phi spreads consecutive addresses evenly.
_GOLDEN = 0x9E3779B1


def _bpf(code: int, k: int = 0, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)


def spread_program(n: int) -> bytes:
    """Classic BPF: the index (0..n-1) of the socket for a datagram, from its source address.

    For IPv4 the address is the word at offset 12 of the header; for IPv6 the four words at 8
    are folded with XOR. With ``h = (addr * 0x9E3779B1) mod 2^32 >> 16``, ``h * n >> 16`` is
    the index."""
    ld_b, ld_w, ret_a = 0x30, 0x20, 0x16  # BPF_LD|BPF_B|BPF_ABS, BPF_LD|BPF_W|BPF_ABS, BPF_RET|A
    tax, xor_x, ja, jeq = 0x07, 0xAC, 0x05, 0x15  # BPF_MISC|TAX, ALU|XOR|X, JMP|JA, JMP|JEQ|K
    rsh, mul = 0x74, 0x24  # BPF_ALU|{RSH,MUL}|BPF_K
    net = _SKF_NET_OFF
    return b"".join([
        _bpf(ld_b, net),  # A = first byte of the IP header
        _bpf(rsh, 4),  # A = IP version
        _bpf(jeq, 4, jt=0, jf=2),  # IPv4: next; IPv6: skip two
        _bpf(ld_w, net + 12),  # A = IPv4 source
        _bpf(ja, 10),  # over the IPv6 part, to the hash
        _bpf(ld_w, net + 8),  # IPv6 source, word by word, folded
        _bpf(tax),
        _bpf(ld_w, net + 12),
        _bpf(xor_x),
        _bpf(tax),
        _bpf(ld_w, net + 16),
        _bpf(xor_x),
        _bpf(tax),
        _bpf(ld_w, net + 20),
        _bpf(xor_x),
        _bpf(mul, _GOLDEN),
        _bpf(rsh, 16),  # the hash's top 16 bits, the evenly spread ones,
        _bpf(mul, n),  # scaled to 0..n-1
        _bpf(rsh, 16),
        _bpf(ret_a),
    ])


def spread_by_address(sock: socket.socket, n: int) -> bool:
    """Make the SO_REUSEPORT group of ``sock`` (``n`` sockets, bound in order) pick a datagram's
    socket by its source address alone; False when the kernel refuses (the group then keeps its
    own choice).

    Without a program the kernel hashes address and port pair, which keeps each source on one
    socket but can spread a few busy sources unevenly: with the listen benchmark's 16 senders
    one worker used 0.87 of a core and the other 0.50, and the busy one dropped. The program's
    result is the index of the socket in the group, which is the order the sockets were bound
    in (an index past the group's size falls back to the kernel's hash); it is set once for the
    whole group. All targets of one host land in one worker, so its per-host figures are
    counted in one place."""
    import ctypes

    code = spread_program(n)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HP", len(code) // 8, ctypes.addressof(buf))  # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
    except OSError:
        return False
    return True


def set_rcvbuf(sock: socket.socket, size: int) -> int:
    """Ask for ``size`` bytes of receive buffer; SO_RCVBUFFORCE (root) goes past rmem_max."""
    force = getattr(socket, "SO_RCVBUFFORCE", 33)
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def bound_address(sock: socket.socket) -> str:
    from netconsolectl.endpoint import endpoint

    host, port = sock.getsockname()[:2]
    return endpoint(host, port)


def normalize_host(host: str) -> str:
    """``::ffff:192.0.2.1`` (IPv4 on a dual-stack socket) is shown as ``192.0.2.1``."""
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    return host


@dataclass
class Server:
    """Runs the receive loop until :meth:`stop` (or SIGINT/SIGTERM) and shuts down cleanly."""

    sock: socket.socket
    processor: Processor
    allow: list[IPNetwork] = field(default_factory=list)
    #: Called with the counters on SIGUSR1 (final=False) and at exit (final=True).
    report: Callable[[dict[str, int], bool], None] | None = None
    #: Makes the batch handler from the address resolver; default: the general path.
    handler_factory: Callable[[Callable[[Hashable], Source]], Handler] | None = None
    use_mmsg: bool = True
    #: Called about once a second with the time (per-host figures, silence).
    periodic: Callable[[float], None] | None = None
    running: bool = True
    _report_requested: bool = False
    _reopen_requested: bool = False
    _allowed: dict[str, bool] = field(default_factory=dict)

    def stop(self) -> None:
        self.running = False

    def _is_allowed(self, host: str) -> bool:
        ok = self._allowed.get(host)
        if ok is None:
            try:
                ip = ipaddress.ip_address(host.split("%", 1)[0])
            except ValueError:
                ok = False
            else:
                ok = any(ip in net for net in self.allow if net.version == ip.version)
            if len(self._allowed) > ADDRESS_CACHE:
                self._allowed.clear()
            self._allowed[host] = ok
        return ok

    def install_signals(self) -> socket.socket:
        """SIGINT/SIGTERM stop, SIGUSR1 reports, SIGHUP reopens output files; a wakeup socket
        makes them immediate."""
        rfd, wfd = socket.socketpair()
        rfd.setblocking(False)
        wfd.setblocking(False)
        signal.set_wakeup_fd(wfd.fileno(), warn_on_full_buffer=False)
        self._wakeup_keep = wfd

        def _stop(signum: int, frame: object) -> None:
            self.running = False

        def _usr1(signum: int, frame: object) -> None:
            self._report_requested = True

        def _hup(signum: int, frame: object) -> None:
            self._reopen_requested = True

        signal.signal(signal.SIGHUP, _hup)
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGUSR1, _usr1)
        return rfd

    def serve(self, wakeup: socket.socket | None = None) -> None:
        """Receive until stopped, then shut the processor down (flushing every sink)."""
        proc = self.processor
        recv_batch, resolve = self._batch_source()
        if self.handler_factory is not None:
            handle = self.handler_factory(resolve)
        else:
            handle = _generic_handler(proc, resolve)
        receive = self._receiver(recv_batch, handle, resolve)
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        if wakeup is not None:
            poller.register(wakeup.fileno(), select.POLLIN)
        clock = _Clock(time.monotonic())
        drain = True
        while self.running:
            if not receive():
                proc.flush_sinks()
                if proc.outputs_gone:
                    drain = False
                    break
                poller.poll(TICK * 1000)
                if wakeup is not None:
                    with contextlib.suppress(BlockingIOError):
                        wakeup.recv(64)
            self._housekeeping(clock)
        # What the kernel had already queued when the stop came is part of "everything".
        deadline = time.monotonic() + DRAIN_ON_STOP
        while drain and time.monotonic() < deadline and receive():
            pass
        proc.shutdown(time.time())
        if self.periodic is not None:
            self.periodic(time.time())
        if self.report is not None:
            self.report(dict(proc.counters.values), True)

    def _batch_source(
        self,
    ) -> tuple[Callable[[], tuple[list[bytes], list[Hashable]]], Callable[[Hashable], Source]]:
        """How a batch is received (recvmmsg when it can be) and how its address keys become
        sources."""
        from netconsolectl.receiver.mmsg import open_batch, sockaddr_to_source

        batcher = open_batch(self.sock) if self.use_mmsg else None
        if batcher is None:
            return self._recvfrom_batch, _resolve_tuple  # type: ignore[return-value]
        return batcher.recv, sockaddr_to_source  # type: ignore[return-value]

    def _receiver(
        self,
        recv_batch: Callable[[], tuple[list[bytes], list[Hashable]]],
        handle: Handler,
        resolve: Callable[[Hashable], Source],
    ) -> Callable[[], bool]:
        """``receive()``: handle what is queued now; False when nothing was."""
        counters = self.processor.counters.values
        allowed = self._allowed_key(resolve) if self.allow else None

        def receive() -> bool:
            payloads, keys = recv_batch()
            if not payloads:
                return False
            if allowed is not None:
                n = len(payloads)
                keep = [i for i, k in enumerate(keys) if allowed(k)]
                if len(keep) != n:
                    payloads = [payloads[i] for i in keep]
                    keys = [keys[i] for i in keep]
                    counters["received"] += n - len(keep)
                    counters["dropped"] += n - len(keep)
            handle(payloads, keys, time.time())
            return True

        return receive

    def _housekeeping(self, clock: _Clock) -> None:
        """Between batches: the processor's tick, the periodic hand-over, and what a signal
        asked for (reopen the outputs, report the counters)."""
        proc = self.processor
        mono = time.monotonic()
        if mono >= clock.next_tick:
            clock.next_tick = mono + TICK
            proc.tick(time.time())
            if self.periodic is not None and mono >= clock.next_periodic:
                clock.next_periodic = mono + PERIOD
                self.periodic(time.time())
        if self._reopen_requested:
            self._reopen_requested = False
            proc.flush_sinks()
            proc.reopen_sinks()
        if self._report_requested:
            self._report_requested = False
            proc.flush_sinks()
            proc.sync_counters()
            if self.report is not None:
                self.report(dict(proc.counters.values), False)

    def _recvfrom_batch(self) -> tuple[list[bytes], list[Hashable]]:
        payloads: list[bytes] = []
        keys: list[Hashable] = []
        recvfrom = self.sock.recvfrom
        try:
            while len(payloads) < BATCH:
                data, addr = recvfrom(MAX_DATAGRAM)
                payloads.append(data)
                keys.append(addr)
        except BlockingIOError:
            pass
        return payloads, keys

    def _allowed_key(self, resolve: Callable[[Hashable], Source]) -> Callable[[Hashable], bool]:
        cache: dict[Hashable, bool] = {}

        def allowed(key: Hashable) -> bool:
            ok = cache.get(key)
            if ok is None:
                if len(cache) > ADDRESS_CACHE:
                    cache.clear()
                ok = self._is_allowed(resolve(key)[0])
                cache[key] = ok
            return ok

        return allowed


@dataclass
class _Clock:
    """When the receive loop next ticks the processor and hands over per-host figures."""

    start: float
    next_tick: float = 0.0
    next_periodic: float = 0.0

    def __post_init__(self) -> None:
        self.next_tick = self.start + TICK
        self.next_periodic = self.start + PERIOD


def _resolve_tuple(addr: tuple[str, int]) -> Source:
    return normalize_host(addr[0]), addr[1]


def _generic_handler(
    proc: Processor, resolve: Callable[[Hashable], Source]
) -> Handler:
    cache: dict[Hashable, Source] = {}
    feed = proc.feed

    def handle(payloads: list[bytes], keys: list[Hashable], now: float) -> None:
        for data, key in zip(payloads, keys, strict=True):
            src = cache.get(key)
            if src is None:
                if len(cache) > ADDRESS_CACHE:
                    cache.clear()
                src = resolve(key)
                cache[key] = src
            feed(data, src, now)

    return handle
