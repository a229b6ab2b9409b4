"""Wire-format parser: hand-made datagrams in the kernel's format, and random bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netconsolectl.receiver.wire import (
    Extended,
    Malformed,
    Plain,
    parse_body,
    parse_datagram,
    parse_plain,
    unescape,
)


def test_extended_plain_record() -> None:
    p = parse_datagram(b"6,416,1758426,-;hello world\n")
    assert isinstance(p, Extended)
    h = p.header
    assert (h.release, h.prio, h.seq, h.ts_usec, h.cont, h.frag) == (None, 6, 416, 1758426, False,
                                                                       None)
    assert (h.facility, h.level) == (0, 6)
    assert parse_body(p.body) == ("hello world", {}, None)


def test_release_prefix_and_continuation() -> None:
    p = parse_datagram(b"6.12.0-1-amd64,4,12,99,c;cont line\n")
    assert isinstance(p, Extended)
    assert p.header.release == "6.12.0-1-amd64"
    assert p.header.cont is True
    assert p.header.level == 4


def test_devkmsg_facility() -> None:
    p = parse_datagram(b"12,5,6,-;from userspace\n")
    assert isinstance(p, Extended)
    assert (p.header.facility, p.header.level) == (1, 4)


def test_dictionary_userdata_and_sysdata() -> None:
    body = (
        b"usb 1-1: new device\n SUBSYSTEM=usb\n DEVICE=c189:1\n rack=r12\n cpu=1\n"
        b" taskname=kworker/0:1\n release=6.17.0\n msgid=42\n"
    )
    p = parse_datagram(b"6,100,200,-;" + body)
    assert isinstance(p, Extended)
    text, fields, _ = parse_body(p.body)
    assert text == "usb 1-1: new device"
    assert fields == {
        "SUBSYSTEM": "usb",
        "DEVICE": "c189:1",
        "rack": "r12",
        "cpu": "1",
        "taskname": "kworker/0:1",
        "release": "6.17.0",
        "msgid": "42",
    }


def test_user_key_with_a_sysdata_name_is_kept_beside_the_kernels() -> None:
    """userdata msgid=static and cpu=7, then the kernel's sysdata cpu and msgid: all four
    survive; the kernel's values keep the names (loss is counted on its msgid)."""
    body = b"hello\n msgid=static\n cpu=7\n cpu=1\n msgid=42\n"
    _text, fields, _ = parse_body(body)
    assert fields == {"userdata.msgid": "static", "userdata.cpu": "7", "cpu": "1",
                      "msgid": "42"}


def test_escapes_are_decoded() -> None:
    text, _, raw = parse_body(b"tab\\x09esc\\x1b[31mbs\\x5c utf8 \\xc3\\xa9 bad \\xff\n")
    assert text == "tab\tesc\x1b[31mbs\\ utf8 \u00e9 bad \ufffd"
    assert raw == b"tab\tesc\x1b[31mbs\\ utf8 \xc3\xa9 bad \xff"
    assert unescape(b"no escapes") == b"no escapes"
    assert unescape(b"\\x4") == b"\\x4"  # incomplete escape kept as it is


def test_caller_header_field() -> None:
    p = parse_datagram(b"6,1,2,-,caller=T123;x\n")
    assert isinstance(p, Extended)
    assert p.header.extra == {"caller": "T123"}


def test_fragment_header() -> None:
    p = parse_datagram(b"6.4.0,6,444,501151268,-,ncfrag=0/31;first part")
    assert isinstance(p, Extended)
    assert p.header.frag == (0, 31)
    assert p.header.release == "6.4.0"


def test_plain_console_text() -> None:
    p = parse_datagram(b"[   12.345678] eth0: link up\n")
    assert isinstance(p, Plain)
    assert parse_plain(p.data) == ("[   12.345678] eth0: link up", None)


def test_plain_text_with_semicolons_and_commas_is_not_extended() -> None:
    for raw in (b"a,b,c,d;e\n", b"1,2,3;x\n", b"1,2,3,44;x\n", b"x,1,2,3,-- ;y\n",
                b"6,-1,2,-;x\n", b"my release,6,1,2,-;x\n"):
        assert isinstance(parse_datagram(raw), Plain), raw


def test_malformed() -> None:
    cases = {
        b"": "empty datagram",
        b"6,1,2,-,ncfrag=5/5;x": "ncfrag offset outside total",
        b"6,1,2,-,ncfrag=a/5;x": "bad ncfrag",
        b"6,1,2,-,ncfrag=0/99999999;x": "ncfrag total too large",
        b"6,1,2,-,ncfrag=0/3;toolong": "fragment past ncfrag total",
        b"6,1,2,-,ncfrag=0/3;": "empty fragment",
    }
    for raw, reason in cases.items():
        p = parse_datagram(raw)
        assert isinstance(p, Malformed), raw
        assert p.reason == reason


def test_key_value_oddities() -> None:
    text, fields, _ = parse_body(b"msg\n noequals\n =novalue\n k=v=w\nnot indented\n")
    assert fields == {"k": "v=w"}
    assert text == "msg\n noequals\n =novalue\nnot indented"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=1200))
def test_random_bytes_never_raise(data: bytes) -> None:
    p = parse_datagram(data)
    if isinstance(p, Extended):
        parse_body(p.body)
    elif isinstance(p, Plain):
        parse_plain(p.data)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"6", b"12", b",", b";", b"-", b"c", b"=", b"ncfrag", b"/", b"0",
                              b"99", b"\n", b" ", b"\\x41", b"\\x", b"\xff", b"6.1.0"]),
             max_size=40)
)
def test_header_like_noise_never_raises(pieces: list[bytes]) -> None:
    p = parse_datagram(b"".join(pieces))
    if isinstance(p, Extended):
        parse_body(p.body)
