"""CLI runbook commands: apply, export, cmdline, persist, loglevel, test, doctor."""

from __future__ import annotations
