"""Console loglevel: what it filters never reaches netconsole, and the CLI says so."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from netconsolectl.sender.configfs import ConfigFS
from tests.kernel.guest.conftest import Cli, Wire, sh
from tests.kernel.guest.test_10_targets import explicit

pytestmark = pytest.mark.usefixtures("netconsole")


def console_loglevel() -> int:
    with open("/proc/sys/kernel/printk") as f:
        return int(f.read().split()[0])


@pytest.fixture
def loglevel_4(cli: Cli) -> Iterator[None]:
    """Debian's default console loglevel (4: errors and worse reach consoles), set with the
    CLI's ``loglevel`` command, which must change the kernel's value."""
    r = cli("loglevel", "4")
    assert r.code == 0, str(r)
    assert console_loglevel() == 4
    try:
        yield
    finally:
        sh("dmesg -n 8")


@pytest.mark.usefixtures("loglevel_4")
def test_message_below_console_loglevel_does_not_arrive(cli: Cli, wire: Wire,
                                                        kmsg: Callable[..., None],
                                                        configfs: ConfigFS,
                                                        names: Callable[[str], str]) -> None:
    port = wire.port()
    name = names("loglevel")
    r = cli("add", name, *explicit(port), "--extended")
    assert r.code == 0, str(r)
    assert "loglevel" in r.err, f"add must warn that the console loglevel filters: {r}"

    info, warning, error = (wire.marker(x) for x in ("info", "warning", "error"))
    kmsg(info, level=6)
    kmsg(warning, level=4)
    kmsg(error, level=3)
    # Filtered before any console sees it: not even the boot target gets these.
    wire.expect_absent(info, everywhere=True)
    wire.expect_absent(warning, everywhere=True)
    wire.expect(port, error, level=3)

    r = cli("disable", name)
    assert r.code == 0, str(r)
    r = cli("enable", name)
    assert r.code == 0 and "loglevel" in r.err, f"enable must warn too: {r}"


def test_no_warning_at_loglevel_8(cli: Cli, wire: Wire, names: Callable[[str], str]) -> None:
    assert console_loglevel() == 8
    shown = cli("loglevel")
    assert shown.code == 0 and "8" in shown.out + shown.err, str(shown)
    r = cli("add", names("loud"), *explicit(wire.port()), "--extended")
    assert r.code == 0, str(r)
    assert "loglevel" not in r.err, str(r)
