"""The ``netconsole=`` boot/module parameter."""

from __future__ import annotations


def count_parsed(value: str) -> int:
    """How many targets of a ``netconsole=`` value the kernel would create (``;`` separated)."""
    return sum(1 for part in value.split(";") if part.strip())
