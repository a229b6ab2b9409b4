"""Real-kernel tier: the kernel's netconsole selftest scenarios, replayed with netconsolectl.

tests/kernel/guest/test_85_selftests.py configures each scenario's target with ``apply`` and
announces what a second ``netconsolectl listen --json`` on the host must report
(``wire.expect_replay``); this module judges each scenario by its selftest's name. The guest
test itself is judged by test_kernel.py; a scenario the kernel lacks is skipped there, and
here too, with the guest's reason.
"""

from __future__ import annotations

import pytest

from tests.kernel.harness import GuestRun

pytestmark = pytest.mark.kernel

#: netcons_cmdline.sh's replay is checked on the host's raw wire (the boot target sends there)
#: by test_kernel.py's test_scenario[test_85_selftests.py::test_selftest_cmdline].
SCENARIOS = ("basic", "fragmented_msg", "overflow", "sysdata", "userdata", "resume", "torture")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_selftest_replay_reaches_listen(guest_run: GuestRun, scenario: str) -> None:
    nodes = guest_run.nodeids(f"test_85_selftests.py::test_selftest_{scenario}")
    outcomes = [guest_run.outcome(n) for n in nodes]
    if not outcomes:
        pytest.fail(f"the guest did not run the {scenario} replay: {guest_run.problem()}")
    if all(o == "skipped" for o, _ in outcomes):
        pytest.skip("; ".join(text for _, text in outcomes))
    failed = [text for o, text in outcomes if o != "passed"]
    if failed:
        pytest.fail(f"the {scenario} replay failed in the guest:\n" + "\n".join(failed),
                    pytrace=False)
    failures = guest_run.replay_failures(scenario)
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)
