"""Command-line interface. ``main`` is the console script entry point."""

from __future__ import annotations

# Each module registers its commands on ``app`` when imported. Keep them light: heavy imports
# (pyroute2, scapy, the receiver) happen inside the command functions.
from netconsolectl.cli import listen, resolve, runbook, targets  # noqa: F401
from netconsolectl.cli.app import app


def main() -> None:
    app(prog_name="netconsolectl")


__all__ = ["app", "main"]
