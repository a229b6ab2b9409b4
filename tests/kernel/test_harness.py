"""The host-side judge of the kernel tier, without a VM: it must catch what goes wrong.

Fed with the datagrams captured from the real 6.12 kernel (tests/data/packets-6.12.jsonl) and
with hand-made guest records, :class:`~tests.kernel.harness.GuestRun` has to pass what arrived
as announced and fail every kind of mismatch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.harness import GuestRun, ListenResult, guest_scenarios, messages
from tests.kernel.vm import BootResult, Datagram

CAPTURE = Path(__file__).parents[1] / "data" / "packets-6.12.jsonl"
NODE = "tests/kernel/guest/test_x.py::test_y"
BOOT_PORT = 40000


def captured() -> dict[str, list[Datagram]]:
    cases: dict[str, list[Datagram]] = {}
    for line in CAPTURE.read_text().splitlines():
        o = json.loads(line)
        d = Datagram(o["port"], o.get("family", "ipv4"), bytes.fromhex(o["hex"]), 0.0)
        cases.setdefault(o["case"], []).append(d)
    return cases


def run(datagrams: list[Datagram], *records: dict[str, Any]) -> GuestRun:
    base = [{"kind": "report", "nodeid": NODE, "when": w, "outcome": "passed"}
            for w in ("setup", "call", "teardown")]
    return GuestRun({"boot_port": BOOT_PORT}, BootResult(0, 1.0, Path("/nonexistent")),
                    [*base, *records, {"kind": "session", "exitstatus": 0}], datagrams)


def expect(port: int, marker: str, **kw: Any) -> dict[str, Any]:
    rec = {"kind": "expect", "nodeid": NODE, "port": port, "family": "ipv4", "marker": marker,
           "fmt": "extended", "userdata": None, "release": None, "level": None,
           "only_port": True}
    rec.update(kw)
    return rec


def test_fragments_are_joined_with_their_userdata() -> None:
    frags = captured()["fragmented"]
    [m] = messages(frags)
    assert m.extended and len(m.raw) == 2
    assert m.text.startswith(b"PKT-LONG 0000") and m.text.endswith(b"0071abcdefghij")
    assert m.userdata == {"host": "guest1", "note": "n" * 150}


def test_release_dictionary_and_basic_are_told_apart() -> None:
    cases = captured()
    [rel] = messages(cases["release"])
    assert rel.release == "6.12.117+deb12-amd64" and rel.prio == 12
    dicts = messages(cases["extended-dict"])
    assert all(m.userdata == {} and len(m.trailer) == 2 for m in dicts)
    [basic] = messages(cases["plain"])
    assert not basic.extended and basic.text.startswith(b"[")


def test_announced_message_passes() -> None:
    cases = captured()
    d = cases["extended-userdata"]
    r = run(d, expect(d[0].port, "PKT-EXT-USERDATA", userdata={"host": "guest1", "rack": "r7"},
                      level=4))
    assert r.wire_failures(NODE) == []
    assert r.outcome(NODE) == ("passed", "")
    assert r.problem() is None


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"port": 1}, "did not arrive"),
        ({"userdata": {"host": "guest1"}}, "userdata lines"),
        ({"release": "6.12"}, "release prefix"),
        ({"level": 3}, "level 4 != expected 3"),
        ({"fmt": "basic"}, "expected the basic format"),
        ({"marker": "NOT-SENT"}, "did not arrive"),
    ],
)
def test_mismatches_fail(change: dict[str, Any], complaint: str) -> None:
    d = captured()["extended-userdata"]
    rec = expect(d[0].port, "PKT-EXT-USERDATA", userdata={"host": "guest1", "rack": "r7"},
                 level=4)
    rec.update(change)
    failures = run(d, rec).wire_failures(NODE)
    assert failures and complaint in failures[0], failures


def test_basic_expected_but_extended_or_stray_ports() -> None:
    cases = captured()
    plain = cases["plain"]
    assert run(plain, expect(plain[0].port, "PKT-PLAIN", fmt="basic")).wire_failures(NODE) == []
    ext = cases["extended"]
    assert "expected the extended format" in run(
        plain, expect(plain[0].port, "PKT-PLAIN")).wire_failures(NODE)[0]
    copy = Datagram(ext[0].port + 1, "ipv4", ext[0].data, 0.0)
    failures = run([*ext, copy], expect(ext[0].port, "PKT-EXTENDED")).wire_failures(NODE)
    assert failures and "also arrived on ports" in failures[0]
    boot_copy = Datagram(BOOT_PORT, "ipv4", ext[0].data, 0.0)
    assert run([*ext, boot_copy], expect(ext[0].port, "PKT-EXTENDED")).wire_failures(NODE) == []


def test_absent() -> None:
    ext = captured()["extended"]
    on_boot = Datagram(BOOT_PORT, "ipv4", ext[0].data, 0.0)
    absent = {"kind": "absent", "nodeid": NODE, "marker": "PKT-EXTENDED", "port": None,
              "everywhere": False}
    assert run([on_boot], absent).wire_failures(NODE) == []
    assert run(ext, absent).wire_failures(NODE)
    assert run([on_boot], {**absent, "everywhere": True}).wire_failures(NODE)
    assert run(ext, {**absent, "port": BOOT_PORT}).wire_failures(NODE) == []


def test_guest_failures_and_crashes_are_reported() -> None:
    failed = run([], {"kind": "report", "nodeid": NODE, "when": "call", "outcome": "failed",
                      "longrepr": "AssertionError: boom"})
    assert failed.outcome(NODE) == ("failed", "AssertionError: boom")
    crashed = GuestRun({"boot_port": BOOT_PORT}, BootResult(1, 1.0, Path("/nonexistent")),
                       [{"kind": "report", "nodeid": NODE, "when": "setup", "outcome": "passed"}],
                       [])
    assert crashed.outcome(NODE)[0] == "missing"
    assert "did not finish" in (crashed.problem() or "")


def test_every_guest_module_has_scenarios() -> None:
    scenarios = guest_scenarios()
    files = {s.split("::")[0] for s in scenarios}
    guest_dir = Path(__file__).parent / "guest"
    expected = {p.name for p in guest_dir.glob("test_*.py")} - {"test_conformance.py"}
    assert files == expected


# -- netconsolectl listen as the collector ----------------------------------------------------

LONG = "NCK-long " + "x" * 1000
USERDATA = {"host": "guest1"}


BOOT = "5eed0000c0ffee00"  # the boot part of listen's stable id, 16 hex digits


def heard(**change: Any) -> tuple[list[dict[str, Any]], ListenResult]:
    """Three announced messages and listen's report of them, with ``change`` applied: a
    ``messages`` list replaces the messages; other keys update the counters or the result."""
    texts = [("NCK-err", 3), (LONG, 4), ("NCK-debug", 7)]
    announced = [{"kind": "listen-expect", "nodeid": NODE, "text": t, "level": lvl,
                  "userdata": USERDATA} for t, lvl in texts]
    messages = [{"type": "message", "host": "127.0.0.1", "port": 5000, "release": None,
                 "facility": 1, "level": lvl, "seq": 10 + i, "ts_usec": 1000 + i,
                 "cont": False, "text": t, "fields": USERDATA, "incomplete": False,
                 "id": f"{BOOT}-{10 + i}"}
                for i, (t, lvl) in enumerate(texts)]
    messages = change.pop("messages", messages)
    counters = {"type": "counters", "received": 4, "messages": 3, "fragments": 2,
                "reassembled": 1, "incomplete": 0, "lost": 0, "malformed": 0, "dropped": 0}
    counters.update({k: change.pop(k) for k in list(change) if k in counters})
    objects = [*messages, *change.pop("events", []), counters]
    result = ListenResult(port=5000, returncode=0, objects=objects, stderr="")
    for k, v in change.items():
        setattr(result, k, v)
    return announced, result


def listen_run(announced: list[dict[str, Any]], result: ListenResult | None) -> GuestRun:
    r = run([], *announced)
    r.listen = result
    return r


def test_listen_output_as_announced_passes() -> None:
    assert listen_run(*heard()).listen_failures() == []


def _msgs(index: int | None = None, **fields: Any) -> list[dict[str, Any]]:
    """listen's messages, the one at ``index`` (0 err, 1 long, 2 debug) with ``fields``."""
    out = heard()[1].of_type("message")
    if index is not None:
        out[index] = {**out[index], **fields}
    return out


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"messages": _msgs(0, level=4)}, "!= expected"),
        ({"messages": _msgs(0, fields={})}, "!= expected"),
        ({"messages": _msgs(1, incomplete=True)}, "!= expected"),
        ({"messages": _msgs(1, text=LONG[:1000])}, "reported 0 times"),
        ({"messages": _msgs(2, seq=13)}, "missing from listen's output: [12]"),
        ({"messages": _msgs(2, seq=9)}, "out of the order of logging"),
        ({"messages": _msgs(0, seq=None)}, "no seq"),
        ({"messages": [*_msgs(), _msgs()[0]]}, "reported 2 times"),
        ({"events": [{"type": "lost", "first_seq": 11, "last_seq": 11}]}, "loss"),
        ({"messages": _msgs(0, id=f"{BOOT}-99")}, "does not end in the seq 10"),
        ({"messages": _msgs(0, id="0123456789abcdef-10")}, "more than one boot"),
        ({"incomplete": 1}, "incomplete = 1"),
        ({"reassembled": 0}, "nothing was reassembled"),
        ({"returncode": 1}, "exited with 1"),
        ({"problem": "listen printed no ready line"}, "no ready line"),
    ],
)
def test_listen_mismatches_fail(change: dict[str, Any], complaint: str) -> None:
    failures = listen_run(*heard(**change)).listen_failures()
    assert failures and any(complaint in f for f in failures), failures


def test_listen_missing_or_unannounced() -> None:
    _, result = heard()
    assert "not started" in listen_run([], None).listen_failures()[0]
    assert "announced no message" in listen_run([], result).listen_failures()[-1]
    no_counters = ListenResult(5000, 0, result.of_type("message"), "")
    assert "no counters line" in listen_run(heard()[0], no_counters).listen_failures()[0]
