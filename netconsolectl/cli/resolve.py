"""CLI resolve: route, source address and next-hop MAC discovery."""

from __future__ import annotations
