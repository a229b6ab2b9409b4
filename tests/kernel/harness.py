"""Host side of the real-kernel tier: one boot, the guest's verdicts, and the wire checks.

:func:`run_guest` binds the receivers, boots the VM once running ``pytest tests/kernel/guest``,
and returns a :class:`GuestRun` holding every guest test report, every expectation the guest
tests announced, and every datagram the host received. :meth:`GuestRun.check` turns one guest
test into a host verdict.

The wire is parsed here independently of netconsolectl's own receiver, from the format as the
6.12 kernel sends it (see tests/data/packets-6.12.jsonl):
extended ``[<release>,]<prio>,<seq>,<ts_usec>,<flag>[,ncfrag=<off>/<total>];<text>\\n``
followed by `` KEY=VALUE\\n`` lines (dictionary, then userdata); basic ``[ sec.usec] text\\n``.

Two more things are set up before the boot. The boot parameter carries a second target,
``cmdline1``, whose value netconsolectl's own formatter wrote from a configuration-style spec
(``config.json`` has the spec and the whole value), so the guest can check that what
``cmdline`` prints is what the kernel makes of it. And :class:`Listen` runs
``netconsolectl listen --json`` on a port of its own, the product's receiver as a collector;
its output is judged by tests/kernel/test_listen.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kernel import TIER_DIR_ENV, vm
from tests.unprivileged import nobody_python

REPO = Path(__file__).resolve().parents[2]
GUEST_DIR = "tests/kernel/guest"
POOL_IPV4 = 40  # host ports handed out to guest tests by ``wire.port()``
POOL_IPV6 = 8
GENERATED_LOCAL_PORT = 6666  # cmdline1's source port (cmdline0 keeps the default 6665)
LOG_USER = 1  # the facility of what /dev/kmsg writes
LISTEN_READY = re.compile(r"listening on udp 127\.0\.0\.1:(\d+)")
LISTEN_METRICS = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/")

_EXT = re.compile(
    rb"(?:(?P<release>[^,;]*[^0-9,;][^,;]*),)?(?P<prio>\d+),(?P<seq>\d+),(?P<ts>\d+),"
    rb"(?P<flag>[^,;]*)(?P<fields>(?:,[^;]*)?);",
    re.S,
)
_FRAG = re.compile(rb",ncfrag=(\d+)/(\d+)")
_DICT_KEYS = (b"SUBSYSTEM=", b"DEVICE=")


@dataclass
class Message:
    """One printk record as received on one port (fragments joined)."""

    port: int
    family: str
    extended: bool
    raw: list[bytes]
    text: bytes = b""
    trailer: list[bytes] = field(default_factory=list)  # " KEY=VALUE" lines after the text
    release: str | None = None
    prio: int | None = None

    @property
    def userdata(self) -> dict[str, str]:
        out = {}
        for line in self.trailer:
            body = line[1:]
            if body.startswith(_DICT_KEYS):
                continue
            key, _, value = body.partition(b"=")
            out[key.decode(errors="replace")] = value.decode(errors="replace")
        return out

    def show(self) -> str:
        return " | ".join(repr(r[:160]) for r in self.raw)


def _split_body(body: bytes) -> tuple[bytes, list[bytes]]:
    text, _, rest = body.partition(b"\n")
    return text, [line for line in rest.split(b"\n") if line]


def messages(datagrams: list[vm.Datagram]) -> list[Message]:
    """Group datagrams into records: ncfrag pieces by (port, header) and offset."""
    out: list[Message] = []
    frags: dict[tuple[Any, ...], list[tuple[int, int, bytes, bytes]]] = defaultdict(list)
    for d in datagrams:
        m = _EXT.match(d.data)
        if m is None:
            out.append(Message(d.port, d.family, False, [d.data], text=d.data))
            continue
        body = d.data[m.end():]
        frag = _FRAG.search(m.group("fields"))
        rel = m.group("release")
        key = (d.port, d.family, rel, m.group("prio"), m.group("seq"), m.group("ts"))
        if frag:
            frags[key].append((int(frag.group(1)), int(frag.group(2)), body, d.data))
            continue
        text, trailer = _split_body(body)
        out.append(Message(d.port, d.family, True, [d.data], text, trailer,
                           rel.decode() if rel else None, int(m.group("prio"))))
    for key, parts in frags.items():
        parts.sort()
        body = b"".join(p[2] for p in parts)
        text, trailer = _split_body(body)
        complete = len(body) == parts[0][1]
        msg = Message(key[0], key[1], True, [p[3] for p in parts], text, trailer,
                      key[2].decode() if key[2] else None, int(key[3]))
        if not complete:
            msg.trailer.append(b" <incomplete ncfrag reassembly>")
        out.append(msg)
    return out


@dataclass
class GuestRun:
    """Everything one boot produced."""

    config: dict[str, Any]
    boot: vm.BootResult
    records: list[dict[str, Any]]
    datagrams: list[vm.Datagram]
    reports: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    expects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    catch_all: set[int] = field(default_factory=set)
    messages: list[Message] = field(default_factory=list)
    listen: ListenResult | None = None
    replay: ListenResult | None = None  # the second listen, for the selftest replays
    retried: str | None = None  # why the VM was booted a second time, if it was

    def __post_init__(self) -> None:
        self.catch_all.add(self.config["boot_port"])
        if self.config.get("generated_boot_port") is not None:
            self.catch_all.add(self.config["generated_boot_port"])
        for r in self.records:
            node = r.get("nodeid", "")
            if r["kind"] == "report":
                self.reports.setdefault(node, []).append(r)
            elif r["kind"] in ("expect", "absent"):
                self.expects.setdefault(node, []).append(r)
            elif r["kind"] == "catch-all":
                self.catch_all.add(r["port"])
        self.messages = messages(self.datagrams)

    # -- summary ----------------------------------------------------------------------------
    def _one(self, kind: str) -> dict[str, Any] | None:
        return next((r for r in self.records if r["kind"] == kind), None)

    @property
    def exitstatus(self) -> int | None:
        s = self._one("session")
        return None if s is None else int(s["exitstatus"])

    def timings(self) -> str:
        start, end = self._one("start"), self._one("session")
        parts = [f"VM wall time {self.boot.seconds:.0f} s"]
        if start:
            parts.append(f"guest booted and pytest started at uptime {start['uptime']:.0f} s")
        if start and end:
            parts.append(f"guest pytest {end['uptime'] - start['uptime']:.0f} s")
        outcomes: dict[str, int] = defaultdict(int)
        for node in self.reports:
            outcomes[self.outcome(node)[0]] += 1
        parts.append(", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or "no tests")
        parts.append(f"{len(self.datagrams)} datagrams received")
        return "; ".join(parts)

    def problem(self) -> str | None:
        """Why the guest run as a whole is unusable (boot failed, pytest crashed), or None."""
        errors = [r for r in self.records if r["kind"] == "collect-error"]
        if errors:
            return "guest collection errors:\n" + "\n".join(
                f"{r['nodeid']}: {r['longrepr']}" for r in errors)
        if self.boot.timed_out:
            return f"the VM timed out after {self.boot.seconds:.0f} s"
        if self.exitstatus is None:
            return (f"the guest pytest did not finish (vng exit {self.boot.returncode}); "
                    f"log {self.boot.log}")
        if self.exitstatus not in (0, 1):  # 1: some tests failed, reported one by one
            return f"the guest pytest exited with {self.exitstatus}"
        return None

    # -- one scenario -----------------------------------------------------------------------
    def nodeids(self, scenario: str) -> list[str]:
        """Guest node ids of ``file::function`` (all parametrisations) or an exact id."""
        out = []
        for node in self.reports:
            rel = node.split(GUEST_DIR + "/", 1)[-1]
            if rel == scenario or (rel.startswith(scenario + "[") and "[" not in scenario):
                out.append(node)
        return out

    def outcome(self, node: str) -> tuple[str, str]:
        reps = self.reports.get(node, [])
        for r in reps:
            if r["outcome"] == "failed":
                return ("error" if r["when"] != "call" else "failed"), r.get("longrepr", "")
        for r in reps:
            if r["outcome"] == "skipped":
                return "skipped", r.get("longrepr", "")
        return ("passed", "") if any(r["when"] == "call" for r in reps) else ("missing", "")

    def wire_failures(self, node: str) -> list[str]:
        return [f for e in self.expects.get(node, []) for f in self._evaluate(e)]

    def listen_failures(self) -> list[str]:
        """What ``netconsolectl listen`` reported against the guest's ``expect_listen``
        announcements: each message exactly once, whole, with its level, facility (user) and
        userdata fields, in the order logged; every sequence number between the first and the
        last announced one (the guest logs them at console loglevel 8, where nothing is
        filtered); no loss, incomplete message or malformed datagram counted."""
        heard = self.listen
        if heard is None:
            return ["listen was not started on the host"]
        if heard.problem is not None:
            return [f"{heard.problem}; listen stderr:\n{heard.stderr}"]
        fails = []
        if heard.returncode != 0:
            fails.append(f"listen exited with {heard.returncode}:\n{heard.stderr}")
        expected = [r for r in self.records if r["kind"] == "listen-expect"]
        if not expected:
            return [*fails, "the guest announced no message for listen"]
        messages = heard.of_type("message")
        seqs = []
        for e in expected:
            label = e["text"][:40]
            got = [m for m in messages if m.get("text") == e["text"]]
            if len(got) != 1:
                near = [str(m.get("text"))[:80] for m in messages
                        if label[:20] in str(m.get("text"))]
                fails.append(f"{label!r} reported {len(got)} times with exactly the text "
                             f"logged (similar: {near})")
                continue
            m = got[0]
            want = {"host": "127.0.0.1", "facility": LOG_USER, "level": e["level"],
                    "release": None, "cont": False, "fields": e["userdata"],
                    "incomplete": False}
            have = {k: m.get(k) for k in want}
            if have != want:
                fails.append(f"{label!r}: {have} != expected {want}")
            if not isinstance(m.get("seq"), int) or not isinstance(m.get("ts_usec"), int):
                fails.append(f"{label!r}: no seq or ts_usec: {m}")
            else:
                seqs.append(m["seq"])
        # The stable id: one boot prefix for the stream, then the record's own seq.
        boots = set()
        for m in messages:
            if isinstance(m.get("seq"), int):
                prefix, _, seq = str(m.get("id")).rpartition("-")
                boots.add((m.get("port"), prefix))
                if seq != str(m["seq"]) or len(prefix) != 16:
                    fails.append(f"id {m.get('id')!r} does not end in the seq {m['seq']}")
        per_port: defaultdict[object, set[str]] = defaultdict(set)
        for port, prefix in boots:
            per_port[port].add(prefix)
        if any(len(prefixes) > 1 for prefixes in per_port.values()):
            fails.append(f"more than one boot in the ids of one stream: {sorted(boots)}")
        if seqs and (seqs != sorted(seqs) or len(set(seqs)) != len(seqs)):
            fails.append(f"sequence numbers out of the order of logging: {seqs}")
        elif seqs:
            heard_seqs = {m["seq"] for m in messages if isinstance(m.get("seq"), int)}
            missing = sorted(set(range(seqs[0], seqs[-1] + 1)) - heard_seqs)
            if missing:
                fails.append(f"sequence numbers missing from listen's output: {missing}")
        fails += [f"listen reported loss in an unbroken stream: {e}"
                  for e in heard.of_type("lost")]
        counters = heard.of_type("counters")
        if not counters:
            fails.append(f"no counters line at exit:\n{heard.stderr}")
        else:
            final = counters[-1]
            fails += [f"{key} = {final.get(key)} in the final counters: {final}"
                      for key in ("incomplete", "lost", "malformed", "dropped")
                      if final.get(key) != 0]
            if any(len(e["text"]) > 1000 for e in expected) and not final.get("reassembled"):
                fails.append(f"a message over 1000 bytes was announced but nothing was "
                             f"reassembled from ncfrag fragments: {final}")
        return fails

    def crash_failures(self) -> list[str]:
        """What listen reported against the guest's ``crash-expect`` records: each crash the
        guest triggered (hung task, OOM kill, and the panic run after the guest pytest) is one
        crash event of that kind, complete. (Kinds, not ports: slirp gives the guest's
        datagrams a source port of its own on the host.)"""
        heard = self.listen
        if heard is None or heard.problem is not None:
            return [f"listen: {heard.problem if heard else 'not started'}"]
        expected = [r["crash"] for r in self.records if r["kind"] == "crash-expect"]
        if not expected:
            return ["the guest announced no crash (test_90_crash.py did not run?)"]
        crashes = heard.of_type("crash")
        seen = [(c.get("kind"), c.get("complete"), c.get("title")) for c in crashes]
        fails = []
        for kind in expected:
            got = [c for c in crashes if c.get("kind") == kind]
            if len(got) != 1:
                fails.append(f"{kind}: {len(got)} crash events (all crash events: {seen})")
            elif got[0].get("complete") is not True:
                fails.append(f"{kind}: reported incomplete: {got[0]}")
        return fails

    def replay_failures(self, scenario: str) -> list[str]:
        """What the replay listen reported against the ``replay-expect`` records of one
        selftest scenario (tests/kernel/guest/test_85_selftests.py): each announced text
        exactly once, whole, at its level, with exactly the announced fields (a field
        announced as None must be there with any value), and nothing announced absent."""
        heard = self.replay
        if heard is None or heard.problem is not None:
            return [f"replay listen: {heard.problem if heard else 'not started'}"]
        mine = [r for r in self.records if r["kind"] in ("replay-expect", "replay-absent")
                and r["scenario"] == scenario]
        if not mine:
            return [f"the guest announced nothing for {scenario}"]
        messages = heard.of_type("message")
        fails = []
        for e in mine:
            if e.get("basic"):
                got = [m for m in messages if re.fullmatch(r"\[ *\d+\.\d+\] " + re.escape(
                    e["text"]), str(m.get("text")))]
            else:
                got = [m for m in messages if m.get("text") == e["text"]]
            label = e["text"][:50]
            if e["kind"] == "replay-absent":
                fails += [f"{label!r} must not arrive, but did: {m}" for m in got]
                continue
            if len(got) != 1:
                near = [str(m.get("text"))[:60] for m in messages
                        if label[:16] in str(m.get("text"))]
                fails.append(f"{label!r} reported {len(got)} times (similar: {near})")
                continue
            m = got[0]
            fields = m.get("fields") or {}
            want = e["fields"]
            if set(fields) != set(want) or any(
                    v is not None and fields.get(k) != v for k, v in want.items()):
                fails.append(f"{label!r}: fields {fields} != announced {want}")
            if e["level"] is not None and m.get("level") != e["level"]:
                fails.append(f"{label!r}: level {m.get('level')} != {e['level']}")
            if m.get("incomplete"):
                fails.append(f"{label!r} reported incomplete: {m}")
        return fails

    def panic_report(self) -> tuple[int, bool]:
        """How much of the guest's final panic listen reported: the number of messages from
        "Kernel panic - not syncing" on (0: it never arrived), and whether listen's crash event
        for it is complete (its stack trace ended; panic()'s own closing line only comes
        after a restart that a panic timeout does first, so it is not required)."""
        heard = self.listen
        if heard is None:
            return 0, False
        messages = heard.of_type("message")
        start = next((m for m in messages
                      if "Kernel panic - not syncing" in str(m.get("text"))), None)
        if start is None or not isinstance(start.get("seq"), int):
            return 0, False
        after = [m for m in messages if m.get("port") == start.get("port")
                 and isinstance(m.get("seq"), int) and m["seq"] >= start["seq"]]
        panics = [c for c in heard.of_type("crash") if c.get("kind") == "panic"]
        return len(after), any(c.get("complete") is True for c in panics)

    def _evaluate(self, e: dict[str, Any]) -> list[str]:
        marker = e["marker"].encode()
        if e["kind"] == "absent":
            if e["port"] is not None:
                hits = [m for m in self.messages if marker in m.text and m.port == e["port"]]
                where = f"port {e['port']}"
            elif e["everywhere"]:
                hits = [m for m in self.messages if marker in m.text]
                where = "any port"
            else:
                hits = [m for m in self.messages if marker in m.text
                        and m.port not in self.catch_all]
                where = "any port but the boot target's"
            return [f"{e['marker']!r} must not arrive on {where}, but did on port {m.port}: "
                    f"{m.show()}" for m in hits]
        port, family = e["port"], e["family"]
        mine = [m for m in self.messages if marker in m.text]
        here = [m for m in mine if m.port == port and m.family == family]
        fails = []
        if not here:
            on_port = [m for m in self.messages if m.port == port and m.family == family]
            elsewhere = sorted({m.port for m in mine})
            fails.append(
                f"{e['marker']!r} did not arrive on {family} port {port} "
                f"({len(on_port)} other messages there; marker seen on ports {elsewhere})"
                + (f"; last there: {on_port[-1].show()}" if on_port else ""))
            return fails
        if len(here) > 1:
            fails.append(f"{e['marker']!r} arrived {len(here)} times on port {port}")
        m = here[0]
        if e["fmt"] == "basic":
            if m.extended:
                fails.append(f"expected the basic format, got extended: {m.show()}")
            elif not (m.text.startswith(b"[") and m.text.endswith(b"\n")
                      and m.text.count(b"\n") == 1):
                fails.append(f"basic message is not one '[time] text' line: {m.show()}")
        else:
            if not m.extended:
                fails.append(f"expected the extended format, got: {m.show()}")
                return fails
            if e["userdata"] is not None and m.userdata != e["userdata"]:
                fails.append(f"userdata lines {m.userdata} != expected {e['userdata']}: "
                             f"{m.show()}")
            if m.release != e["release"]:
                fails.append(f"release prefix {m.release!r} != expected {e['release']!r}: "
                             f"{m.show()}")
            if e["level"] is not None and (m.prio is None or m.prio & 7 != e["level"]):
                fails.append(f"level {None if m.prio is None else m.prio & 7} != expected "
                             f"{e['level']}: {m.show()}")
        if e["only_port"]:
            stray = sorted({x.port for x in mine if (x.port, x.family) != (port, family)
                            and x.port not in self.catch_all})
            if stray:
                fails.append(f"{e['marker']!r} also arrived on ports {stray}")
        return fails


def generated_boot_target(port: int, release: str) -> tuple[dict[str, Any], str]:
    """cmdline1: a spec in ``list --json`` terms, and the ``netconsole=`` piece that
    netconsolectl's formatter makes of it (``cmdline`` prints the same for a live target).

    The release prefix (``r``) only where the kernel ``release`` has it: on 6.1 the unknown
    flag fails the parse, and one bad entry makes the whole module refuse to load.
    """
    from netconsolectl.sender import kernel
    from netconsolectl.sender.bootparam import format_param, from_spec
    from netconsolectl.sender.spec import TargetSpec

    spec = {"dev_name": vm.GUEST_NIC, "local_ip": vm.GUEST_IP,
            "local_port": GENERATED_LOCAL_PORT, "remote_ip": vm.HOST_IP, "remote_port": port,
            "remote_mac": vm.GATEWAY_MAC, "extended": True,
            "release": kernel.for_release(release).release_attr}
    return spec, format_param([from_spec("cmdline1", TargetSpec.from_dict(spec))])


@dataclass
class ListenResult:
    """What ``netconsolectl listen --json`` wrote, once it has been stopped."""

    port: int | None
    returncode: int | None
    objects: list[dict[str, Any]]
    stderr: str
    problem: str | None = None  # why the output cannot be judged (did not start, crashed)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("type") == kind]


class Listen:
    """``netconsolectl listen --json`` on 127.0.0.1, bound before the boot.

    The port is read from its ready line on standard error; standard output (one JSON object
    per line) goes to a file in ``workdir``. :meth:`stop` sends SIGTERM, which makes listen
    flush pending reassemblies and print its counters, and parses the output.
    """

    def __init__(self, workdir: Path, ready_timeout: float = 60.0, name: str = "listen") -> None:
        self.out_path = workdir / f"{name}.jsonl"
        self.err_path = workdir / f"{name}.err"
        argv = [sys.executable, "-m", "netconsolectl", "listen", "--json", "--bind",
                "127.0.0.1", "--port", "0", "--metrics", "127.0.0.1:0"]
        self.port: int | None = None
        #: Its HTTP server (tests/kernel/guest/test_85_delivery.py asks it about a token).
        self.metrics_port: int | None = None
        self.problem: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            try:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                             stderr=err, cwd=REPO)
            except OSError as e:  # the boot goes on; the listen test reports it
                self.problem = f"cannot start listen: {e}"
                return
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            err = self.err_path.read_text(errors="replace")
            m = LISTEN_READY.search(err)
            if m:
                self.port = int(m.group(1))
                mm = LISTEN_METRICS.search(err)
                self.metrics_port = int(mm.group(1)) if mm else None
                return
            if self.proc.poll() is not None:
                self.problem = f"listen exited with {self.proc.returncode} before it was ready"
                return
            time.sleep(0.05)
        self.problem = f"listen printed no ready line within {ready_timeout:.0f} s"

    def stop(self, timeout: float = 30.0) -> ListenResult:
        problem = self.problem
        if self.proc is None:
            return ListenResult(None, None, [], "", problem)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problem = problem or f"listen did not stop within {timeout:.0f} s of SIGTERM"
        elif problem is None:
            problem = f"listen exited with {self.proc.returncode} while the guest ran"
        objects = []
        for n, line in enumerate(self.out_path.read_text(errors="replace").splitlines(), 1):
            try:
                objects.append(json.loads(line))
            except json.JSONDecodeError:
                problem = problem or f"line {n} of {self.out_path} is not JSON: {line[:200]!r}"
        return ListenResult(self.port, self.proc.returncode, objects,
                            self.err_path.read_text(errors="replace"), problem)


def run_guest(workdir: Path | None = None, timeout: float = 1500.0,
              image: Path | None = None) -> GuestRun:
    """Boot ``image`` (default: the 6.12 kernel) once with receivers listening; run the guest
    tests; collect everything."""
    image = image or vm.find_kernel()
    assert image is not None, vm.unavailable_reason()
    release = vm.kernel_release(image)
    shared = Path(tempfile.mkdtemp(prefix=f"netconsolectl-kernel-{release}-", dir=workdir))
    rx = vm.Receiver(ports=POOL_IPV4 + 2, ports6=POOL_IPV6)
    listen = Listen(shared)
    replay = Listen(shared, name="replay-listen")  # the selftest replays' collector
    try:
        boot_port, generated_port, *ports = rx.ports
        spec, generated = generated_boot_target(generated_port, release)
        # A modular netconsole reads its parameter as netconsole.netconsole= (see
        # vm.boot_param). cmdline0 is written by hand, cmdline1 by netconsolectl.
        boot_value = f"{vm.boot_param(boot_port)};{generated}"
        config = {
            "boot_port": boot_port, "ports": ports, "ports6": rx.ports6, "nic": vm.GUEST_NIC,
            "guest_ip": vm.GUEST_IP, "host_ip": vm.HOST_IP, "guest_ip6": vm.GUEST_IP6,
            "host_ip6": vm.HOST_IP6, "gateway_mac": vm.GATEWAY_MAC,
            "boot_param": boot_value, "generated_boot_port": generated_port,
            "generated_boot_spec": spec, "listen_port": listen.port,
            "replay_listen_port": replay.port,
            "listen_metrics_port": listen.metrics_port,
            "kernel_release": release,
            # How uid 65534 runs netconsolectl from this checkout, which may sit in a directory
            # only root can enter: prepared here, where copying is fast; the guest sees the
            # host's /tmp through its overlay.
            "nobody": dict(zip(("argv", "env"), nobody_python(), strict=True)),
            "nic_mac": vm.GUEST_MAC, "loop_send_mac": vm.LOOP_SEND_MAC,
            "loop_recv_mac": vm.LOOP_RECV_MAC,
        }
        (shared / "config.json").write_text(json.dumps(config))
        # One pytest for everything; plugins the guest tests do not use stay unloaded (every
        # import costs ~100x more under emulation).
        pytest_argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                       "-p", "no:hypothesispytest", "-p", "no:fakefs", "-q", "--tb=short",
                       "-rfEs", GUEST_DIR,
                       # a development aid: only some guest tests (e.g. "-k test_85"); the
                       # host tests of the others then fail as not run
                       *shlex.split(os.environ.get("NETCONSOLECTL_VM_GUEST_ARGS", ""))]
        # The panic of tests/kernel/guest/test_90_crash.py ends the VM, so it is the very last
        # step: the guest test leaves panic.sh behind and it runs once pytest is done (with
        # virtme-ng's panic=-1 and QEMU's -no-reboot the VM then powers off).
        panic = shared / "panic.sh"
        argv = ["sh", "-c", f'"$@"; rc=$?; if [ -f {panic} ]; then sh {panic}; fi; exit $rc',
                "sh", *pytest_argv]
        env = {TIER_DIR_ENV: str(shared), "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONUNBUFFERED": "1"}
        append = [f"netconsole.netconsole={boot_value}"]
        boot = vm.boot(argv, rwdir=shared, cwd=REPO, log=shared / "guest.log", append=append,
                       env=env, timeout=timeout, image=image, loop_nics=True)
    finally:
        datagrams = rx.close(drain=1.0)
        heard = listen.stop()
        replayed = replay.stop()
    results = shared / "results.jsonl"
    records = []
    if results.exists():
        for line in results.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a crash; the rest is unknown anyway
    return GuestRun(config, boot, records, datagrams, listen=heard, replay=replayed)


def run_guest_retrying(workdir: Path | None = None, timeout: float = 1500.0,
                       image: Path | None = None) -> GuestRun:
    """:func:`run_guest`, booted a second time when the first VM ended before its pytest
    started (virtme-ng/QEMU failing at start-up, seen now and then on a loaded machine): a
    failure inside the guest is never retried."""
    run = run_guest(workdir, timeout, image)
    if run._one("start") is None and not run.boot.timed_out:
        first = run.boot
        run = run_guest(workdir, timeout, image)
        run.retried = (f"the first boot ended after {first.seconds:.0f} s before the guest "
                       f"pytest started (vng exit {first.returncode}, log {first.log})")
    return run


def guest_scenarios() -> list[str]:
    """``file::function`` of every guest test function, read from the source without importing
    it (the guest modules only import inside the VM)."""
    import ast

    out = []
    for path in sorted((REPO / GUEST_DIR).glob("test_*.py")):
        if path.name == "test_conformance.py":
            continue  # one host test per conformance check instead, see test_kernel.py
        tree = ast.parse(path.read_text(), str(path))
        out += [f"{path.name}::{node.name}" for node in tree.body
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]
    return out


def conformance_scenarios() -> dict[str, str]:
    """Check name -> guest node id (relative to the guest directory)."""
    from tests import conformance

    return {c.__name__: f"test_conformance.py::test_conformance[{c.__name__}]"
            for c in conformance.CHECKS}
