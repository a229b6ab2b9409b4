"""Real-kernel tier: netconsolectl against Debian's kernels in QEMU, packets seen on the host.

How it works: the first test that needs it boots the VM once (``guest_run`` in conftest.py,
via tests/kernel/harness.py and tests/kernel/vm.py). Before booting, the host binds UDP
receivers on 127.0.0.1/::1; one of them is the boot target's port, passed as
``netconsole.netconsole=`` on the kernel command line. In the guest a single pytest process runs
tests/kernel/guest/ as root against the real /sys/kernel/config, driving netconsolectl
in-process. Each guest test writes its verdict and the packets it expects (or forbids) to a
results file in a directory shared with the host. After the VM powers off, each host test
below turns one guest test into a verdict: it fails with the guest's failure text, or when
what the guest announced did not arrive on the host in the right format on the right port.

Adding a scenario: write a ``test_*`` function in a ``tests/kernel/guest/test_*.py`` module
(top-level functions only; files run in name order, so ``test_00_setup.py`` sees a pristine
kernel). Use the guest fixtures (see tests/kernel/guest/conftest.py)::

    def test_something(cli, wire, kmsg, names):
        port = wire.port()                       # a host port of its own
        name = names("thing")                    # removed after the test
        r = cli("add", name, "--remote-ip", HOST_IP, "--remote-port", str(port), ...)
        assert r.code == 0, str(r)
        marker = wire.marker("thing")
        kmsg(marker)                             # via /dev/kmsg
        wire.expect(port, marker, userdata={"k": "v"})   # or fmt="basic", release=..., level=...
        wire.expect_absent(other_marker)

The host side picks it up by itself (the guest files are read, not imported, to list them).
Conformance checks (tests/conformance.py) each get their own host test as well.

Besides the pool, the guest has two boot targets (``cmdline0`` to ``wire.boot_port``,
hand-written; ``cmdline1`` to ``wire.generated_boot_port``, written by netconsolectl's
formatter, see conftest's BOOT_PARAM) and ``wire.listen_port``, where ``netconsolectl listen
--json`` runs on the host: announce what it must report with ``wire.expect_listen(text,
level=..., userdata=...)``; tests/kernel/test_listen.py judges it.

Each kernel of tests/kernel/vm.py's SERIES (6.1, 6.12, 6.18, 7.x) is booted once and every
host test here runs once per kernel. A kernel is skipped, with the reason, only when this
machine cannot boot it (no QEMU, no image of that series, no virtme-ng, not x86_64; 6.18 and
7.x come from scripts/fetch-kernels). ``NETCONSOLECTL_VM_TIMEOUT`` bounds each boot (default
1500 s); ``NETCONSOLECTL_VM_KVM=1`` uses KVM where nested virtualisation works.
"""

from __future__ import annotations

import pytest

from tests.kernel.harness import GuestRun, conformance_scenarios, guest_scenarios

pytestmark = pytest.mark.kernel


def _verdict(run: GuestRun, scenario: str) -> None:
    problem = run.problem()
    nodes = run.nodeids(scenario)
    if not nodes:
        pytest.fail(f"guest test {scenario} did not run"
                    + (f": {problem}" if problem else "")
                    + f" (guest log: {run.boot.log}; test_guest_run_completed shows its end)",
                    pytrace=False)
    failures = []
    skipped = []
    for node in nodes:
        outcome, text = run.outcome(node)
        if outcome in ("failed", "error"):
            failures.append(f"in the guest, {node} {outcome}:\n{text}")
        elif outcome == "skipped":
            skipped.append(f"{node}: {text}")
        elif outcome == "missing":
            failures.append(f"in the guest, {node} never finished"
                            + (f": {problem}" if problem else ""))
        failures += [f"on the host, for {node}: {f}" for f in run.wire_failures(node)]
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
    if skipped and len(skipped) == len(nodes):
        pytest.skip("skipped in the guest: " + "; ".join(skipped))


@pytest.mark.parametrize("scenario", guest_scenarios())
def test_scenario(guest_run: GuestRun, scenario: str) -> None:
    _verdict(guest_run, scenario)


@pytest.mark.parametrize(
    "scenario", [pytest.param(node, id=check) for check, node in conformance_scenarios().items()]
)
def test_conformance_on_real_kernel(guest_run: GuestRun, scenario: str) -> None:
    _verdict(guest_run, scenario)


def test_guest_run_completed(guest_run: GuestRun) -> None:
    """The guest pytest ran to its end and nothing it ran went unjudged here."""
    problem = guest_run.problem()
    assert problem is None, f"{problem}\n--- end of guest log ---\n{guest_run.boot.tail()}"
    scenarios = guest_scenarios() + list(conformance_scenarios().values())
    known = {n for s in scenarios for n in guest_run.nodeids(s)}
    unjudged = sorted(set(guest_run.reports) - known)
    assert not unjudged, f"guest tests without a host test (not top-level functions?): {unjudged}"
