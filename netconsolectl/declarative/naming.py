"""``apply --userdata-hostname``: every target of a configuration names its sender."""

from __future__ import annotations

from dataclasses import replace

from netconsolectl.declarative.config import Config
from netconsolectl.sender.naming import with_hostname


def name_targets(config: Config, name: str | None = None) -> Config:
    """``config`` with ``hostname=<name>`` (this machine's by default) added to the userdata of
    every target. Raises InvalidInput when a target sets ``hostname`` to something else."""
    return replace(config, targets=tuple(
        replace(t, spec=replace(t.spec, userdata=with_hostname(t.spec.userdata, name)))
        for t in config.targets))
