"""How an address and a port are printed together, everywhere: ``192.0.2.1:6666`` and
``[2001:db8::1]:6666`` (RFC 3986 brackets, so an IPv6 address never runs into its port)."""

from __future__ import annotations


def endpoint(host: object, port: object) -> str:
    """``host:port``, with the host in brackets when it is an IPv6 address; the host alone
    when the port is unknown (never ``:None``)."""
    h = str(host)
    if port is None or port == "":
        return h
    return f"[{h}]:{port}" if ":" in h else f"{h}:{port}"
