"""CLI core target commands: setup, add, set, enable, disable, list, show, remove."""

from __future__ import annotations
