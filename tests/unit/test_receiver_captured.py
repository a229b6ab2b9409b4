"""The parser and reassembly against datagrams captured from a real 6.12 kernel.

``tests/data/packets-6.12.jsonl`` holds one JSON object per datagram (``case``, ``port``,
``hex``), in the order the guest sent them. Each case is fed, in order and shuffled, to the
receiver's processor and the resulting JSON messages are checked field by field.
"""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from netconsolectl.receiver.core import Processor
from netconsolectl.receiver.output import FdWriter
from netconsolectl.receiver.sinks.jsonl import JsonSink
from netconsolectl.receiver.wire import Extended, Plain, parse_datagram

CAPTURE = Path(__file__).parent.parent / "data" / "packets-6.12.jsonl"
RELEASE = "6.12.117+deb12-amd64"
NOW = 1_700_000_000.0


def load() -> dict[str, list[bytes]]:
    if not CAPTURE.exists():
        pytest.skip(f"{CAPTURE.name} not present")
    cases: dict[str, list[bytes]] = defaultdict(list)
    for line in CAPTURE.read_text().splitlines():
        o = json.loads(line)
        cases[o["case"]].append(bytes.fromhex(o["hex"]))
    return cases


def receive(tmp_path: Path, datagrams: list[bytes]) -> list[dict[str, Any]]:
    path = tmp_path / "out.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    p = Processor([JsonSink(FdWriter(fd))])
    for d in datagrams:
        p.feed(d, ("10.0.2.15", 6665), NOW)
    p.shutdown(NOW)
    os.close(fd)
    assert p.counters["malformed"] == 0
    return [json.loads(x) for x in path.read_text().splitlines()]


def only(tmp_path: Path, datagrams: list[bytes]) -> dict[str, Any]:
    [m] = [x for x in receive(tmp_path, datagrams) if x["type"] == "message"]
    return m


def test_every_captured_datagram_parses() -> None:
    for case, datagrams in load().items():
        for d in datagrams:
            p = parse_datagram(d)
            if case.startswith("plain"):
                assert isinstance(p, Plain), case
            else:
                assert isinstance(p, Extended), case
            assert len(d) <= 1000


def test_plain(tmp_path: Path) -> None:
    m = only(tmp_path, load()["plain"])
    assert m["text"].endswith("PKT-PLAIN hello from the guest")
    assert m["seq"] is None and m["level"] is None and m["fields"] == {}


def test_plain_long_arrives_as_two_pieces(tmp_path: Path) -> None:
    # basic format has no header to reassemble by: each 1000-byte piece is its own message
    msgs = [x for x in receive(tmp_path, load()["plain-long"]) if x["type"] == "message"]
    assert len(msgs) == 2
    assert "PKT-PLAIN-LONG" in msgs[0]["text"]


def test_plain_target_never_carries_userdata(tmp_path: Path) -> None:
    m = only(tmp_path, load()["plain-userdata"])
    assert m["fields"] == {} and "PKT-PLAIN-UD" in m["text"]


def test_extended(tmp_path: Path) -> None:
    m = only(tmp_path, load()["extended"])
    assert (m["facility"], m["level"], m["seq"], m["ts_usec"], m["cont"]) == (1, 4, 559,
                                                                              27798879, False)
    assert m["text"] == "PKT-EXTENDED hello" and m["release"] is None


def test_userdata(tmp_path: Path) -> None:
    m = only(tmp_path, load()["extended-userdata"])
    assert m["fields"] == {"host": "guest1", "rack": "r7"}
    assert m["text"] == "PKT-EXT-USERDATA hello"


def test_release(tmp_path: Path) -> None:
    m = only(tmp_path, load()["release"])
    assert m["release"] == RELEASE and m["text"] == "PKT-RELEASE hello"


def test_escapes(tmp_path: Path) -> None:
    m = only(tmp_path, load()["extended-escape"])
    assert m["text"] == "PKT-ESC tab\there back\\slash \u00fc"


def test_multiline_text_is_one_message(tmp_path: Path) -> None:
    m = only(tmp_path, load()["extended-multiline"])
    assert m["text"] == "PKT-MULTI line one\nline two"


def test_levels_and_kernel_facility(tmp_path: Path) -> None:
    m = only(tmp_path, load()["extended-level"])
    assert (m["facility"], m["level"]) == (1, 3)
    k = only(tmp_path, load()["extended-kernel"])
    assert (k["facility"], k["level"]) == (0, 6)


def test_dictionary(tmp_path: Path) -> None:
    msgs = [x for x in receive(tmp_path, load()["extended-dict"]) if x["type"] == "message"]
    assert [m["fields"] for m in msgs] == [{"SUBSYSTEM": "virtio", "DEVICE": "+virtio:virtio8"}] * 2
    assert [m["seq"] for m in msgs] == [631, 632]


def test_ipv6(tmp_path: Path) -> None:
    assert only(tmp_path, load()["ipv6-extended"])["text"] == "PKT-IPV6 hello"


@pytest.mark.parametrize("case", ["fragmented", "fragmented-release"])
@pytest.mark.parametrize("order", ["sent", "reversed", "shuffled+duplicated"])
def test_fragmented(tmp_path: Path, case: str, order: str) -> None:
    datagrams = list(load()[case])
    assert len(datagrams) >= 2
    if order == "reversed":
        datagrams.reverse()
    elif order == "shuffled+duplicated":
        datagrams = datagrams + datagrams[:1]
        random.Random(5).shuffle(datagrams)
    m = only(tmp_path, datagrams)
    assert m["incomplete"] is False
    assert m["text"].startswith("PKT-LONG 0000abcdefghij0001")
    assert m["text"].endswith("0071abcdefghij")
    assert m["fields"]["host"] == "guest1"
    assert set(m["fields"]["note"]) == {"n"}
    assert m["seq"] in (586, 595)
    assert m["release"] == (RELEASE if case == "fragmented-release" else None)
    body_len = int(datagrams[0].split(b"ncfrag=")[1].split(b";")[0].split(b"/")[1])
    assert body_len == 1188


def test_missing_fragment_is_emitted_incomplete(tmp_path: Path) -> None:
    first = load()["fragmented"][0]
    m = only(tmp_path, [first])
    assert m["incomplete"] is True
    assert m["text"].startswith("PKT-LONG 0000")
