"""tests/conformance.py against the real configfs (the unit tier runs it against the fake)."""

from __future__ import annotations

import pytest

from netconsolectl.sender.configfs import ConfigFS
from tests import conformance
from tests.kernel.guest.conftest import NO_NETPOLL_REASON, Lab

pytestmark = pytest.mark.usefixtures("netconsole")


@pytest.mark.parametrize("check", conformance.CHECKS, ids=lambda c: c.__name__)
def test_conformance(check: conformance.Check, configfs: ConfigFS, lab: Lab) -> None:
    if check is conformance.check_no_netpoll_enotsupp and not lab.devices.no_netpoll:
        pytest.skip(NO_NETPOLL_REASON)
    check(configfs, lab.devices)
