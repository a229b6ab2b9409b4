"""Real-kernel tier: ``netconsolectl listen`` on the host receives what the guest kernel sent.

tests/kernel/harness.py starts ``listen --json`` before the VM boots and stops it (SIGTERM)
after the VM has powered off; tests/kernel/guest/test_80_listen.py points a target at its port
and announces each message it logs with ``wire.expect_listen``. Here the JSON that listen wrote
is held against those announcements: every message exactly once, whole, with its level,
facility, userdata fields and sequence number, and no loss in a stream the console loglevel
did not filter.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.kernel.harness import GuestRun

pytestmark = pytest.mark.kernel

LOG_USER = 1  # /dev/kmsg writes get facility user


def _announced(run: GuestRun) -> list[dict[str, Any]]:
    expected = [r for r in run.records if r["kind"] == "listen-expect"]
    if not expected:
        nodes = run.nodeids("test_80_listen.py::test_extended_messages_to_listen")
        outcome = [run.outcome(n) for n in nodes]
        pytest.fail(f"the guest announced no message for listen (guest outcome: {outcome}; "
                    f"problem: {run.problem()})", pytrace=False)
    return expected


def test_listen_reports_what_the_guest_kernel_sent(guest_run: GuestRun) -> None:
    heard = guest_run.listen
    assert heard is not None
    assert heard.problem is None, f"{heard.problem}\nlisten stderr:\n{heard.stderr}"
    assert heard.returncode == 0, f"listen exited with {heard.returncode}:\n{heard.stderr}"
    expected = _announced(guest_run)
    messages = heard.of_type("message")

    failures = []
    seqs = []
    for e in expected:
        label = e["text"][:40]
        got = [m for m in messages if m["text"] == e["text"]]
        if len(got) != 1:
            near = [m["text"][:80] for m in messages if label[:20] in m["text"]]
            failures.append(f"{label!r}: reported {len(got)} times with exactly the text "
                            f"logged (similar: {near})")
            continue
        m = got[0]
        want = {"host": "127.0.0.1", "facility": LOG_USER, "level": e["level"],
                "release": None, "cont": False, "fields": e["userdata"], "incomplete": False}
        have = {k: m.get(k) for k in want}
        if have != want:
            failures.append(f"{label!r}: {have} != expected {want}")
        if not isinstance(m.get("seq"), int) or not isinstance(m.get("ts_usec"), int):
            failures.append(f"{label!r}: seq/ts_usec missing: {m}")
        else:
            seqs.append(m["seq"])
    assert not failures, "\n".join(failures)

    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), \
        f"sequence numbers out of the order of logging: {seqs}"
    # The console loglevel was 8 while the target was enabled (the guest test checks it): no
    # record was filtered, so every sequence number from the first announced message to the
    # last reached listen, and it must not report any as lost.
    heard_seqs = {m["seq"] for m in messages if isinstance(m.get("seq"), int)}
    missing = sorted(set(range(seqs[0], seqs[-1] + 1)) - heard_seqs)
    assert not missing, f"sequence numbers missing from listen's output: {missing}"
    lost = heard.of_type("lost")
    assert not lost, f"listen reported loss in an unbroken stream: {lost}"

    counters = heard.of_type("counters")
    assert counters, f"no counters line at exit:\n{heard.stderr}"
    final = counters[-1]
    assert final["reassembled"] >= 1 and final["fragments"] >= 2, \
        f"the long message should have come in ncfrag fragments: {final}"
    for key in ("incomplete", "lost", "malformed", "dropped"):
        assert final[key] == 0, f"{key} = {final[key]}: {final}"
