"""tests/conformance.py against the real configfs (the unit tier runs it against the fake)."""

from __future__ import annotations

import pytest

from netconsolectl.sender.configfs import ConfigFS
from tests import conformance
from tests.kernel.guest.conftest import Lab

pytestmark = pytest.mark.usefixtures("netconsole")


@pytest.mark.parametrize("check", conformance.CHECKS, ids=lambda c: c.__name__)
def test_conformance(check: conformance.Check, configfs: ConfigFS, lab: Lab) -> None:
    check(configfs, lab.devices)
