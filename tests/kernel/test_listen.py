"""Real-kernel tier: ``netconsolectl listen`` on the host receives what the guest kernel sent.

tests/kernel/harness.py starts ``listen --json`` before the VM boots and stops it (SIGTERM)
after the VM has powered off; tests/kernel/guest/test_80_listen.py points a target at its port
and announces each message it logs with ``wire.expect_listen``.
:meth:`~tests.kernel.harness.GuestRun.listen_failures` holds the JSON that listen wrote against
those announcements: every message exactly once, whole (one of them came in ncfrag fragments),
with its level, facility, userdata fields and sequence number, and no loss in a stream the
console loglevel did not filter.
"""

from __future__ import annotations

import pytest

from tests.kernel.harness import GuestRun

pytestmark = pytest.mark.kernel

SCENARIO = "test_80_listen.py::test_extended_messages_to_listen"
_CRASH = "test_90_crash.py::test_hung_task_and_oom_reach_listen"


def test_listen_reports_what_the_guest_kernel_sent(guest_run: GuestRun) -> None:
    failures = guest_run.listen_failures()
    if failures:
        guest = [f"{n}: {guest_run.outcome(n)[0]}" for n in guest_run.nodeids(SCENARIO)]
        pytest.fail("\n".join(failures) + f"\n(guest: {guest or 'did not run'}; "
                    f"problem: {guest_run.problem()})", pytrace=False)


def test_listen_reports_guest_crashes(guest_run: GuestRun) -> None:
    """A hung task, an OOM kill and a panic of the guest kernel: one crash event each
    (tests/kernel/guest/test_90_crash.py; the panic runs after the guest pytest)."""
    failures = guest_run.crash_failures()
    if failures:
        guest = [f"{n}: {guest_run.outcome(n)[0]}" for n in guest_run.nodeids(_CRASH)]
        pytest.fail("\n".join(failures) + f"\n(guest: {guest or 'did not run'}; "
                    f"problem: {guest_run.problem()})", pytrace=False)


def test_panic_text_reached_the_host(guest_run: GuestRun) -> None:
    """The panic's own lines, from "Kernel panic - not syncing" to the end of its stack trace,
    reached listen: on 7.x only with kernel.panic=0, see tests/kernel/guest/test_90_crash.py."""
    lines, complete = guest_run.panic_report()
    guest = guest_run.outcome(next(iter(guest_run.nodeids(_CRASH)), _CRASH))[0]
    assert lines, f"no line of the panic reached listen (guest test: {guest})"
    assert complete, f"only the first {lines} messages of the panic arrived, not all of it"
