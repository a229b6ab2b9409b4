"""The guest kernel sends to ``netconsolectl listen`` on the host.

The host started ``listen --json`` before the boot (tests/kernel/harness.py); what it must have
reported is announced with ``wire.expect_listen`` and judged after the VM exits by
tests/kernel/test_listen.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.kernel.guest.conftest import KERNEL, Cli, Wire, userdata_args, userdata_sent
from tests.kernel.guest.test_10_targets import explicit
from tests.kernel.guest.test_40_loglevel import console_loglevel

pytestmark = pytest.mark.usefixtures("netconsole")

USERDATA = userdata_sent({"host": "guest1", "rack": "r7"})  # none before 6.9


def test_extended_messages_to_listen(cli: Cli, wire: Wire, kmsg: Callable[..., None],
                                     names: Callable[[str], str]) -> None:
    port = wire.listen_port
    assert port is not None, "netconsolectl listen did not start on the host (see its test)"
    # At loglevel 8 no level is filtered: listen must see an unbroken sequence.
    assert console_loglevel() == 8
    name = names("listen")
    r = cli("add", name, *explicit(port), "--local-port", "6671", "--extended",
            *userdata_args(*(f"{k}={v}" for k, v in USERDATA.items())))
    assert r.code == 0, str(r)

    error = wire.marker("listen-err")
    # Over 1000 bytes with its header and userdata: the kernel sends it as ncfrag fragments
    # (a /dev/kmsg write may be up to 1024 bytes).
    long = wire.marker("listen-long") + " " + "".join(f"{i:04d}abcdefghij" for i in range(70))
    if not KERNEL.at_least((6, 2)):
        # 6.1's /dev/kmsg refuses a write over LOG_LINE_MAX (1024 minus the prefix room) with
        # EINVAL; 6.2 raised it to PRINTKRB_RECORD_MAX (1024). Nothing is fragmented then.
        long = long[:900]
    # The kernel escapes the tab and the UTF-8 bytes as \xNN; listen decodes them.
    escaped = wire.marker("listen-escaped") + "\ttab caf\u00e9"
    debug = wire.marker("listen-debug")
    for text, level in ((error, 3), (long, 4), (escaped, 5), (debug, 7)):
        kmsg(text, level=level)
        wire.expect_listen(text, level=level, userdata=USERDATA)
