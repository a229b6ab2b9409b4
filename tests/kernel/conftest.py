"""Collect the host side (test_kernel.py) on the host and the guest side only in the VM."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.kernel import TIER_DIR_ENV

# tests/kernel/guest needs the VM's real configfs: the host runs it through test_kernel.py, and
# the guest's pytest (which has TIER_DIR_ENV set) runs only that directory.
collect_ignore = ["test_kernel.py"] if os.environ.get(TIER_DIR_ENV) else ["guest"]

_SUMMARY: list[str] = []


@pytest.fixture(scope="session")
def guest_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Boot the VM once for the whole pytest run, the first time a kernel test needs it."""
    from tests.kernel import harness, vm

    reason = vm.unavailable_reason()
    if reason:
        _SUMMARY.append(f"skipped: {reason}")
        pytest.skip(reason)
    timeout = float(os.environ.get("NETCONSOLECTL_VM_TIMEOUT", "1500"))
    run = harness.run_guest(tmp_path_factory.getbasetemp(), timeout=timeout)
    _SUMMARY.append(run.timings())
    _SUMMARY.append(f"guest log: {run.boot.log}")
    yield run


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SUMMARY:
        terminalreporter.section("real-kernel tier (QEMU)")
        for line in _SUMMARY:
            terminalreporter.write_line(line)
