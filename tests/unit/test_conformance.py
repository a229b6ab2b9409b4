"""The kernel emulation passes the same raw-configfs checks as the real kernels of each era.

tests/kernel/ runs these checks inside the QEMU guest against real configfs (Debian's 6.1,
6.12, 6.18 and 7.3); here they run against netconsolectl/sender/emulation.py with the profile
of each era, so a behaviour the emulation claims is one the kernel was seen to have.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netconsolectl.sender.emulation import PROFILES, Emulation
from tests.conformance import CHECKS, FAKE_DEVICES, Check
from tests.conftest import default_devices


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_fake_matches_kernel(tmp_path: Path, profile: str, check: Check) -> None:
    kernel = Emulation(tmp_path / "config", default_devices(), profile=profile)
    check(kernel, FAKE_DEVICES)
    assert kernel.listdir() == [], "the check left targets behind"
