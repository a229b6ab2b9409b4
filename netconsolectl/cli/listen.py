"""CLI listen: the netconsole receiver."""

from __future__ import annotations
