"""Per-host figures: bounded by recency with an 'other' bucket, silence and resumption."""

from __future__ import annotations

from netconsolectl.receiver.fleet import OTHER, FleetStats, make_delta
from netconsolectl.receiver.metrics import parse_address


def test_hosts_beyond_the_limit_fold_into_other() -> None:
    f = FleetStats(max_hosts=100)
    for i in range(10_000):  # a flood of spoofed sources
        f.add({f"10.0.{i // 256}.{i % 256}": [1, 1, {"oops": 1}]}, float(i))
    _, rows = f.snapshot()
    assert len(rows) == 101 and rows[-1][0] == OTHER
    assert sum(r.messages for _, r in rows) == 10_000
    assert sum(r.lost for _, r in rows) == 10_000
    assert sum(r.crashes["oops"] for _, r in rows) == 10_000
    assert rows[-1][1].messages == 9_900
    assert [h for h, _ in rows[:2]] == ["10.0.38.172", "10.0.38.173"]  # hosts 9900, 9901


def test_silence_once_then_resumed() -> None:
    f = FleetStats(silence=10, expect=["192.0.2.9"], now=0.0)
    assert f.add(make_delta({"192.0.2.1": 3}, {}, {}), 1.0) == []
    assert f.check_silence(5.0) == []
    ev = f.check_silence(11.5)
    assert [(e.type, e.host, e.data["last_received"]) for e in ev] == [
        ("silent", "192.0.2.9", None), ("silent", "192.0.2.1", "1970-01-01T00:00:01.000000Z")]
    assert f.check_silence(30.0) == []  # reported once
    back = f.add(make_delta({"192.0.2.1": 1}, {}, {}), 31.0)
    assert [(e.type, e.host) for e in back] == [("resumed", "192.0.2.1")]
    assert [e.host for e in f.check_silence(42.0)] == ["192.0.2.1"]


def test_make_delta_merges() -> None:
    d = make_delta({"a": 2}, {"a": 1, "b": 4}, {("b", "panic"): 1})
    assert d == {"a": [2, 1, {}], "b": [0, 4, {"panic": 1}]}


def test_metrics_address_forms() -> None:
    assert parse_address("9469") == ("0.0.0.0", 9469)
    assert parse_address("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_address("[::1]:9469") == ("::1", 9469)
    import pytest

    from netconsolectl.errors import InvalidInput

    for bad in ("x", "1.2.3.4:99999", "nohost:1"):
        with pytest.raises(InvalidInput):
            parse_address(bad)
