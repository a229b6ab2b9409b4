"""Per-source loss, reorder, duplicate and reset detection; bounded state."""

from __future__ import annotations

from typing import Any

from netconsolectl.receiver.sources import SourceTracker

A = ("192.0.2.1", 6665)
B = ("192.0.2.2", 6665)


def run(t: SourceTracker, seqs: list[int], *, src: tuple[str, int] = A, now: float = 0.0,
        msgids: list[int] | None = None) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for i, s in enumerate(seqs):
        mid = msgids[i] if msgids is not None else None
        for kind, _src, data in t.see(src, s, 1000 + s * 10, mid, now) or []:
            out.append((kind, data))
    return out


def test_in_order_is_silent() -> None:
    t = SourceTracker()
    assert run(t, list(range(100, 200))) == []


def test_gap_reported_after_timeout() -> None:
    t = SourceTracker(timeout=1.0)
    assert run(t, [1, 2, 5, 6], now=0.0) == []
    assert t.expire(0.5) == []
    [(kind, src, data)] = t.expire(1.0)
    assert (kind, src) == ("lost", A)
    assert data == {"first_seq": 3, "last_seq": 4, "count": 2}
    assert t.expire(5.0) == []


def test_reorder_fills_gap() -> None:
    t = SourceTracker(timeout=1.0)
    events = run(t, [1, 2, 4, 3, 5])
    assert events == [("reorder", {"seq": 3})]
    assert t.expire(10.0) == []


def test_partial_fill_leaves_rest_lost() -> None:
    t = SourceTracker(timeout=1.0)
    assert run(t, [1, 6, 3]) == [("reorder", {"seq": 3})]
    lost = sorted((d["first_seq"], d["last_seq"]) for _k, _s, d in t.expire(2.0))
    assert lost == [(2, 2), (4, 5)]


def test_duplicate() -> None:
    t = SourceTracker()
    assert run(t, [1, 2, 3, 3, 2]) == [("duplicate", {"seq": 3}), ("duplicate", {"seq": 2})]


def test_reset_when_seq_goes_far_back() -> None:
    t = SourceTracker(timeout=1.0)
    events = run(t, [5000, 5001, 5003, 12])
    assert events == [
        ("lost", {"first_seq": 5002, "last_seq": 5002, "count": 1}),
        ("reset", {"seq": 12, "previous_seq": 5003}),
    ]
    assert run(t, [13, 14]) == []


def test_reset_when_seq_jumps_ahead_but_time_goes_back() -> None:
    t = SourceTracker()
    t.see(A, 100, 50_000_000, None, 0.0)
    [(kind, _s, data)] = t.see(A, 900, 2_000_000, None, 0.0) or []
    assert kind == "reset" and data == {"seq": 900, "previous_seq": 100}


def test_msgid_gaps_count_loss_and_seq_gaps_do_not() -> None:
    t = SourceTracker(timeout=1.0)
    # seq jumps (records filtered by console_loglevel) while msgid is contiguous: no loss
    assert run(t, [10, 14, 20], msgids=[1, 2, 3]) == []
    assert t.expire(5.0) == []
    # msgid 4 and 5 missing
    assert run(t, [25, 40], msgids=[4, 7]) == []
    [(kind, _s, data)] = t.expire(10.0)
    assert kind == "lost"
    assert data == {"first_seq": 26, "last_seq": 39, "count": 2, "first_msgid": 5,
                    "last_msgid": 6}


def test_msgid_wraps() -> None:
    t = SourceTracker(timeout=1.0)
    assert run(t, [1, 2, 3], msgids=[2**32 - 2, 2**32 - 1, 0]) == []
    assert run(t, [4, 5], msgids=[2, 3]) == []
    [(_kind, _s, data)] = t.expire(5.0)
    assert data["first_msgid"] == 1 and data["count"] == 1


def test_sources_are_independent() -> None:
    t = SourceTracker(timeout=1.0)
    run(t, [1, 2, 3], src=A)
    run(t, [500, 501], src=B)
    assert run(t, [4], src=A) == []


def test_bounded_sources_evict_least_recent() -> None:
    t = SourceTracker(max_sources=100)
    for i in range(1000):
        t.see((f"10.0.{i // 256}.{i % 256}", 6665), 1, 1, None, 0.0)
        t.see(A, i + 1, i + 1, None, 0.0)  # A stays busy and must survive
    assert len(t) == 100
    assert t.evicted == 901
    assert A in t.states


def test_gap_list_is_bounded() -> None:
    t = SourceTracker(timeout=100.0)
    events = run(t, list(range(0, 400, 2)))
    lost = [e for e in events if e[0] == "lost"]
    assert lost and len(t.states[A].gaps or []) <= 32


def test_flush_reports_pending() -> None:
    t = SourceTracker(timeout=100.0)
    run(t, [1, 5])
    [(kind, _s, data)] = t.flush()
    assert kind == "lost" and data["count"] == 3


def test_reset_detected_when_msgid_appears_or_disappears() -> None:
    t = SourceTracker()
    t.see(A, 500, 9_000_000, 10, 0.0)
    [(kind, _s, data)] = t.see(A, 3, 1_000, None, 0.0) or []
    assert kind == "reset" and data == {"seq": 3, "previous_seq": 500}
    assert t.see(A, 4, 2_000, 1, 0.0) is None  # msgid switched on, in order: no verdict


def test_reboot_just_below_the_last_seq_is_a_new_boot() -> None:
    """A host up for 500 s reboots; the new boot's first seqs fall just behind the last ones
    seen (inside the late window): a reset, not duplicates."""
    t = SourceTracker()
    for seq in range(1000, 1101):
        assert t.see(A, seq, 500_000_000 + seq, None, 1000.0) is None
    events = t.see(A, 1090, 5_000_000, None, 1030.0) or []
    assert [(k, d) for k, _s, d in events] == [("reset", {"seq": 1090, "previous_seq": 1100})]
    assert t.see(A, 1091, 5_000_100, None, 1030.0) is None  # the new boot goes on in sequence


def test_late_datagram_of_the_same_boot_stays_a_duplicate() -> None:
    t = SourceTracker()
    for seq in range(1000, 1101):
        t.see(A, seq, 500_000_000 + seq * 1000, None, 1000.0 + seq / 1000)
    # a copy of seq 1090 arriving 5 s late: same boot (its boot time moved by the delay only)
    events = t.see(A, 1090, 500_000_000 + 1090 * 1000, None, 1006.1) or []
    assert [k for k, _s, _d in events] == ["duplicate"]


def test_another_kernel_release_is_a_new_boot() -> None:
    """A kernel upgrade reboot that happens to continue the seq (kexec with a short log, or a
    boot loop printing as many lines each time) is told apart by its release."""
    t = SourceTracker()
    assert t.see(A, 100, 1_000_000, None, 10.0, release="6.1.0") is None
    assert t.see(A, 101, 1_000_100, None, 10.0, release="6.1.0") is None
    events = t.see(A, 102, 1_000_200, None, 10.5, release="6.12.0") or []
    assert [k for k, _s, _d in events] == ["reset"]
    assert t.see(A, 103, 1_000_300, None, 10.5, release="6.12.0") is None


def test_two_senders_sharing_a_source_are_reported_once() -> None:
    """Two targets of one host to one receiver, both from local port 6665: every record comes
    twice. The second copies stay duplicates (the records are the same), and the stream says
    once why, with what to change."""
    from netconsolectl.receiver.sources import SHARED_DUPLICATES

    t = SourceTracker()
    events: list[str] = []
    for seq in range(100, 100 + 3 * SHARED_DUPLICATES):
        for _copy in range(2):
            events += [k for k, _s, _d in t.see(A, seq, 1000 + seq, None, 1.0 + seq / 100) or []]
    assert events.count("shared_source") == 1
    assert events.count("duplicate") == 3 * SHARED_DUPLICATES


def test_a_few_network_duplicates_are_not_a_shared_source() -> None:
    t = SourceTracker()
    events: list[str] = []
    for seq in range(100, 1000):
        copies = 2 if seq % 50 == 0 else 1
        for _copy in range(copies):
            # one message every 100 ms, on the sender's clock as on ours
            events += [k for k, _s, _d in t.see(A, seq, seq * 100_000, None, seq / 10) or []]
    assert "shared_source" not in events and events.count("duplicate") == 18
