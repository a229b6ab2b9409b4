"""Collect the host side (test_kernel.py) on the host and the guest side only in the VM.

The tier boots each kernel of ``vm.SERIES`` once, one after the other in this pytest session:
Debian 12's 6.1 and 6.12, and the newest 6.18 and 7.x of trixie-backports (fetched by
scripts/fetch-kernels). ``guest_run`` is parametrised by kernel, so every host test runs once
per kernel, with the kernel in its id (``[6.1]``, ``[6.12]``, ``[6.18]``, ``[7]``); each boot
runs one pytest process in its guest.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.kernel import TIER_DIR_ENV

# tests/kernel/guest needs the VM's real configfs: the host runs it through test_kernel.py, and
# the guest's pytest (which has TIER_DIR_ENV set) runs only that directory.
collect_ignore = ["test_kernel.py"] if os.environ.get(TIER_DIR_ENV) else ["guest"]

_SUMMARY: dict[str, list[str]] = defaultdict(list)
_OUTCOMES: dict[str, Counter[str]] = defaultdict(Counter)
_RELEASES: dict[str, str] = {}


def _kernels() -> list[str]:
    from tests.kernel import vm

    return [series for series, _ in vm.find_kernels()]


_BOOTS: dict[str, Future[Any]] = {}
_POOL: ThreadPoolExecutor | None = None


def _boot_all(basetemp: Path, session: pytest.Session) -> None:
    """Start every bootable kernel's run on a pool of ``$NETCONSOLECTL_VM_PARALLEL`` threads
    (default 2: a guest keeps about one core busy), in series order, the first time a test
    needs one. Each run has receivers and listen processes of its own, so two guests never
    share a port; the fixture below waits for its own kernel's run."""
    global _POOL
    from tests.kernel import harness, vm

    if _POOL is not None:
        return
    parallel = max(1, int(os.environ.get("NETCONSOLECTL_VM_PARALLEL", "2")))
    _POOL = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="guest")
    timeout = float(os.environ.get("NETCONSOLECTL_VM_TIMEOUT", "1500"))
    needed = {_series_of(item) for item in session.items}  # what -k / -x left to run
    for series, image in vm.find_kernels():
        if (series in needed and image is not None
                and vm.unavailable_reason(image, series) is None):
            _BOOTS[series] = _POOL.submit(harness.run_guest_retrying, basetemp,
                                          timeout=timeout, image=image)


@pytest.fixture(scope="session", params=_kernels())
def guest_run(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Boot one kernel once for the whole pytest run, the first time a test needs it."""
    from tests.kernel import vm

    series: str = request.param
    image = dict(vm.find_kernels()).get(series)
    reason = vm.unavailable_reason(image, series)
    if reason:
        _SUMMARY[series].append(f"skipped: {reason}")
        pytest.skip(reason)
    assert image is not None
    _RELEASES[series] = vm.kernel_release(image)
    _boot_all(tmp_path_factory.getbasetemp(), request.session)
    run = _BOOTS[series].result()
    if run.retried:
        _SUMMARY[series].append(f"booted twice: {run.retried}")
    _SUMMARY[series].append(run.timings())
    lines, complete = run.panic_report()
    _SUMMARY[series].append(
        f"panic: {lines} messages reached listen, {'complete' if complete else 'INCOMPLETE'}"
        if lines else "panic: no line of it reached listen")
    _SUMMARY[series].append(f"guest log: {run.boot.log}")
    yield run


def _series_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    value = callspec.params.get("guest_run")
    return value if isinstance(value, str) else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[None]:
    report = yield
    series = _series_of(item)
    rep: pytest.TestReport = report  # type: ignore[assignment]
    if series is not None and (rep.when == "call" or rep.outcome != "passed"):
        _OUTCOMES[series][rep.outcome] += 1
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _POOL is not None:  # a stopped session (-x, ^C) boots no further kernel
        _POOL.shutdown(wait=True, cancel_futures=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _SUMMARY and not _OUTCOMES:
        return
    terminalreporter.section("real-kernel tier (QEMU)")
    per_kernel = []
    for series in sorted({*_SUMMARY, *_OUTCOMES}, key=lambda s: [int(n) for n in
                                                                 s.split(".") if n.isdigit()]):
        counts = _OUTCOMES.get(series, Counter())
        name = _RELEASES.get(series, series)
        per_kernel.append(f"{name}: {counts['passed']} passed"
                          + "".join(f", {counts[k]} {k}" for k in ("failed", "skipped")
                                    if counts[k]))
    terminalreporter.write_line("kernels: " + "; ".join(per_kernel))
    for series, lines in _SUMMARY.items():
        for line in lines:
            terminalreporter.write_line(f"{_RELEASES.get(series, series)}: {line}")
