"""Command-line interface. ``main`` is the console script entry point."""

from __future__ import annotations

from netconsolectl.cli.app import app

# Each module registers its commands on ``app`` when imported. Keep them light: heavy imports
# (pyroute2, scapy, the receiver) happen inside the command functions.
from netconsolectl.cli import targets  # noqa: E402,F401,I001
from netconsolectl.cli import resolve  # noqa: E402,F401
from netconsolectl.cli import listen  # noqa: E402,F401
from netconsolectl.cli import runbook  # noqa: E402,F401


def main() -> None:
    app(prog_name="netconsolectl")


__all__ = ["app", "main"]
