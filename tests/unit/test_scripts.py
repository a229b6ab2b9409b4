"""The scripts a newcomer runs first: one install step, shared by scripts/test and scripts/demo."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"


def test_test_and_demo_share_the_install_step() -> None:
    setup = (SCRIPTS / "setup-env").read_text()
    assert "DEB_PACKAGES=(" in setup and "pip install" in setup
    for name in ("test", "demo"):
        text = (SCRIPTS / name).read_text()
        assert re.search(r"^source scripts/setup-env$", text, re.M), name
        # not copied: the package list and the pip step live only in setup-env
        assert "DEB_PACKAGES" not in text and "pip install" not in text, name
    demo = (SCRIPTS / "demo.py").read_text()
    assert "run scripts/test" not in demo  # the demo no longer needs the test suite first

