"""Times in ``listen``'s output: lines a person reads show dates in the local time zone with
its offset (ISO 8601); JSON keeps UTC. ``TZ`` is a POSIX rule here (no tzdata needed): XYZ-5:30
is UTC+05:30."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest

from tests.listen.conftest import Sender
from tests.listen.test_fleet import ext

TZ = {"TZ": "XYZ-5:30"}
LOCAL = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+05:30"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_silence_dates_are_local_with_the_zone(listen: Any, workers: str) -> None:
    lst = listen("--silence", "1", "--workers", workers, "--color", "never", env=TZ)
    s = Sender(lst.port)
    s.send(ext(1, b"hello"))
    lst.wait_for(lambda out: "-- silent since" in out, timeout=15)
    s.send(ext(2, b"back"))
    lst.wait_for(lambda out: "-- heard again" in out, timeout=15)
    assert lst.stop() == 0
    out = lst.stdout()
    silent = re.search(rf"^(\d\d:\d\d:\d\d)\.\d{{3}} 127\.0\.0\.1 -- silent since ({LOCAL}) --$",
                       out, re.M)
    assert silent, out
    assert re.search(rf"^\S+ 127\.0\.0\.1 -- heard again \(silent since {LOCAL}\) --$", out,
                     re.M), out
    # the date is the same local clock as the time of day that starts each line
    since = datetime.fromisoformat(silent.group(2))
    line_time = datetime.strptime(silent.group(1), "%H:%M:%S").time()
    gap = (datetime.combine(since.date(), line_time) - since.replace(tzinfo=None))
    assert 0 <= gap.total_seconds() % 86400 < 60, (silent.group(0), gap)


def test_json_keeps_utc(listen: Any) -> None:
    lst = listen("--json", "--silence", "1", "--workers", "1", env=TZ)
    s = Sender(lst.port)
    s.send(ext(1, b"hello"))
    lst.wait_for(lambda out: '"type":"silent"' in out, timeout=15)
    assert lst.stop() == 0
    (silent,) = [o for o in lst.json() if o["type"] == "silent"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", silent["last_received"])
    assert silent["received"].endswith("Z")
