"""The token table and notes behind ``/delivery`` and ``netconsole_host_info``: what counts as a
test line, and memory that stays bounded whatever a sender floods."""

from __future__ import annotations

from netconsolectl.receiver import delivery
from netconsolectl.receiver.core import Processor
from netconsolectl.receiver.fleet import FleetStats, make_delta

T = "netconsolectl-test-0123456789abcdef"


def test_only_a_test_line_has_a_token() -> None:
    assert delivery.token_of(f"netconsolectl test {T} from h to t") == T
    assert delivery.token_of(f"[   12.345678] netconsolectl test {T} from h to t") == T
    assert delivery.token_of(f"netconsolectl test {T}") == T
    for text in (f"quoted: netconsolectl test {T}", f"netconsolectl test {T}x",
                 f"netconsolectl test {T[:-1]}", f"netconsolectl test {T.upper()}", T):
        assert delivery.token_of(text) is None, text


def test_tokens_travel_with_the_deltas_and_stay_bounded() -> None:
    proc = Processor([], host_stats=True, crashes=False)
    for seq in range(1, 2 * delivery.MAX_NOTED + 1):
        token = f"netconsolectl-test-{seq:016x}"
        proc.feed(b"4,%d,1,-;netconsolectl test %s from a to b\n hostname=web1\n"
                  % (seq, token.encode()), ("192.0.2.7", 6665), 100.0)
    delta = make_delta(*proc.take_host_stats())
    assert delta["192.0.2.7"][0] == 2 * delivery.MAX_NOTED
    assert len(delta["192.0.2.7"][3]["t"]) == delivery.MAX_NOTED  # the rest only counted
    assert proc.notes.overflow == delivery.MAX_NOTED
    fleet = FleetStats()
    fleet.tokens = delivery.Tokens(max_tokens=100)
    fleet.add(delta, 101.0)
    assert len(fleet.tokens.seen) == 100  # the oldest went first
    assert fleet.delivery("netconsolectl-test-" + "1".rjust(16, "0")) == []
    (seen,) = fleet.delivery(f"netconsolectl-test-{delivery.MAX_NOTED:016x}")
    assert seen["host"] == "192.0.2.7" and seen["name"] == "web1"
    assert seen["stream"]["messages"] == 2 * delivery.MAX_NOTED
    assert make_delta(*proc.take_host_stats()) == {}  # taken once


def test_sightings_per_token_are_bounded() -> None:
    t = delivery.Tokens()
    for port in range(100):
        t.add("192.0.2.7", T, port, 1.0, 1)
    t.add("192.0.2.7", "not a token", 1, 1.0, 1)
    assert len(t.lookup(T)) == delivery.MAX_SIGHTINGS and list(t.seen) == [T]
    assert t.lookup(T, "192.0.2.8") == []


def test_health_wants_every_worker_reporting_and_no_trouble_growing() -> None:
    h = delivery.Health()
    assert h.report(0.0) == (False, {
        "status": "starting", "workers": {"reporting": 0, "late": [], "alive": False},
        "pipeline": {"keeps_up": True, "growing": [], "window_seconds": delivery.HEALTH_WINDOW},
    })  # nothing reported yet
    h.beat(0, 100.0)
    h.beat(1, 100.0)
    h.counters({"forward_errors": 3}, 100.0)
    assert h.report(101.0)[0] is True
    ok, body = h.report(100.0 + delivery.STALE + 1)
    assert not ok and body["workers"]["late"] == [0, 1]
    h.beat(0, 110.0)
    h.beat(1, 110.0)
    h.counters({"forward_errors": 4}, 110.0)
    ok, body = h.report(110.0)
    assert not ok and body["pipeline"]["growing"] == ["forward_errors"]
    h.counters({"forward_errors": 4}, 110.0 + delivery.HEALTH_WINDOW + 1)
    h.counters({"forward_errors": 4}, 110.0 + delivery.HEALTH_WINDOW + 2)
    h.beat(0, 110.0 + delivery.HEALTH_WINDOW)
    h.beat(1, 110.0 + delivery.HEALTH_WINDOW)
    assert h.report(110.0 + delivery.HEALTH_WINDOW + 2)[0] is True  # the trouble is past
