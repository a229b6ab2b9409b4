"""The kernel-faithful fake passes the same raw-configfs checks as the real 6.12 kernel.

tests/kernel/ runs these checks inside the QEMU guest against real configfs; here they run
against tests/fakekernel.py, so a behaviour the fake claims is one the kernel was seen to have.
"""

from __future__ import annotations

import pytest

from tests.conformance import CHECKS, FAKE_DEVICES, Check
from tests.fakekernel import FakeKernel


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_fake_matches_kernel(kernel: FakeKernel, check: Check) -> None:
    check(kernel, FAKE_DEVICES)
    assert kernel.listdir() == [], "the check left targets behind"
