"""``netconsolectl test --expect-listen http://``: proof of delivery from the guest kernel to the
receiver on the host.

The host runs ``netconsolectl listen --json --metrics 127.0.0.1:PORT`` (tests/kernel/harness.py);
the guest reaches the host's loopback as 10.0.2.2 through QEMU's user networking, for the UDP the
kernel sends and for the HTTP question alike. The receiver answers from what really arrived
through netconsole, so exit 0 here is the guest kernel's packet on the host.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.kernel.guest.conftest import CONFIG, HOST_IP, Cli, Wire
from tests.kernel.guest.test_10_targets import explicit

pytestmark = pytest.mark.usefixtures("netconsole")

#: The target's source port, its own: QEMU's NAT gives each guest source port one host port, so
#: listen would take another test's target on the same port for the same stream (test_80 uses
#: 6671, test_90 6673 and 6674).
DELIVERY_PORT = 6677


def test_delivery_check_sees_the_message_arrive_and_a_wrong_port(
    cli: Cli, wire: Wire, names: Callable[[str], str]
) -> None:
    port = wire.listen_port
    metrics = CONFIG.get("listen_metrics_port")
    assert port is not None and metrics is not None, "listen --metrics did not start on the host"
    url = f"http://{HOST_IP}:{metrics}"
    name = names("delivery")
    r = cli("add", name, *explicit(port), "--local-port", str(DELIVERY_PORT),
            "--extended")
    assert r.code == 0, str(r)
    r = cli("test", name, "--expect-listen", url, "--timeout", "60")
    assert r.code == 0, str(r)
    assert "at level 4 (warning)" in r.out
    assert re.search(rf"^arrived: {re.escape(url)} from \S+:\d+ after [\d.]+ s$", r.out,
                     re.M), r.out
    # A wrong port is silent on the sending side; the check says so (exit 1, with the reason).
    r = cli("set", name, "--remote-port", "9")
    assert r.code == 0, str(r)
    r = cli("test", name, "--expect-listen", url, "--timeout", "5")
    assert r.code == 1, str(r)
    assert re.search(rf"netconsolectl-test-[0-9a-f]{{16}} did not arrive at {re.escape(url)} "
                     r"within 5 s", r.err), r.err
