"""``--userdata-hostname``: name the sender in its messages.

The receiver (``netconsolectl listen``) files and tracks senders by address, which a fleet
behind NAT or DHCP does not keep stable; a ``hostname`` userdata entry rides along on every
extended message (drivers/net/netconsole.c appends userdata to each one) and ``listen`` shows
it as the sender's ``name``.
"""

from __future__ import annotations

import socket

from netconsolectl.errors import InvalidInput
from netconsolectl.sender.spec import validate_userdata_value

KEY = "hostname"


def machine_name() -> str:
    """This machine's name as the kernel has it (``uname -n``)."""
    return socket.gethostname()


def with_hostname(userdata: dict[str, str], name: str | None = None) -> dict[str, str]:
    """``userdata`` plus ``hostname=<name>`` (this machine's by default). Raises InvalidInput
    when ``hostname`` is already given with another value or the name is unusable."""
    value = machine_name() if name is None else name
    if not value:
        raise InvalidInput("--userdata-hostname: this machine has no host name")
    validate_userdata_value(KEY, value)
    have = userdata.get(KEY)
    if have is not None and have != value:
        raise InvalidInput(
            f"--userdata-hostname: userdata {KEY}={have!r} is already given",
            hint="drop one of them",
        )
    return {**userdata, KEY: value}

