"""The netconsole= parameter: the kernel's parse rules, the formatter, and their round trip."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from netconsolectl.errors import InvalidInput
from netconsolectl.sender.bootparam import (
    BROADCAST_MAC,
    RELEASE_ERROR,
    WHITESPACE_WARNING,
    BootTarget,
    count_parsed,
    format_param,
    format_target,
    from_spec,
    from_state,
    kernel_ip,
    kstrtou16,
    mac_pton,
    parse_param,
    parse_target,
    strip_param,
)
from netconsolectl.sender.spec import TargetSpec
from netconsolectl.sender.target import TargetState

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def ok(text: str) -> BootTarget:
    e = parse_target(text)
    assert e.error is None, (text, e.error)
    assert e.target is not None
    return e.target


def error(text: str) -> str:
    e = parse_target(text)
    assert e.target is None, text
    assert e.error is not None
    return e.error


# -- primitives -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ("6666", 6666), ("+6666", 6666), ("0", 0), ("65535", 65535), ("0006665", 6665),
    ("6666\n", 6666),
])
def test_kstrtou16_accepts(text: str, value: int) -> None:
    assert kstrtou16(text) == value


@pytest.mark.parametrize("text", ["", "+", "65536", "-1", "0x10", " 1", "1 ", "1a", "١٢"])
def test_kstrtou16_refuses(text: str) -> None:
    assert kstrtou16(text) is None


@pytest.mark.parametrize(("text", "addr"), [
    ("10.0.0.1", V4("10.0.0.1")),
    ("010.000.0.01", V4("10.0.0.1")),  # in4_pton is decimal and takes leading zeros
    ("fd00::1", V6("fd00::1")),
    ("FD00::0001", V6("fd00::1")),
    ("fd00::00000001", V6("fd00::1")),  # any number of leading zeros while it fits 16 bits
    ("::", V6("::")),
    ("1::", V6("1::")),
    ("1:2:3:4:5:6:7::", V6("1:2:3:4:5:6:7:0")),
    ("::2:3:4:5:6:7:8", V6("0:2:3:4:5:6:7:8")),
    ("1:2:3:4:5:6:7:8", V6("1:2:3:4:5:6:7:8")),
    ("::ffff:1.2.3.4", V6("::ffff:102:304")),
    ("1:2:3:4:5:6:1.2.3.4", V6("1:2:3:4:5:6:102:304")),
    ("1:2:3:4:5::01.2.3.4", V6("1:2:3:4:5:0:102:304")),
])
def test_kernel_ip_accepts(text: str, addr: object) -> None:
    assert kernel_ip(text) == addr


@pytest.mark.parametrize("text", [
    "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1..2.3", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4x",
    "0x1.2.3.4", "fe80::1%eth0", "1:::2", "1::2::3", ":1::2", "1::2:", ":", "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8", "10000::1", "g::1",
    "1.2.3.4::", "1:2:3:4:5:6::1.2.3.4", "::1.2.3.4:5", "::1.2.3", "::256.1.1.1",
    "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3.4x",
])
def test_kernel_ip_refuses(text: str) -> None:
    assert kernel_ip(text) is None


@given(st.ip_addresses())
def test_kernel_ip_reads_every_python_form(addr: V4 | V6) -> None:
    assert kernel_ip(str(addr)) == addr
    if addr.version == 6:
        assert kernel_ip(addr.exploded) == addr


@given(st.text(alphabet="0123456789abcdefABCDEF:.x%", max_size=45))
def test_kernel_ip_never_raises_and_agrees_with_python_on_plain_forms(text: str) -> None:
    got = kernel_ip(text)
    try:
        py: V4 | V6 | None = ipaddress.ip_address(text)
    except ValueError:
        py = None
    if py is not None and "%" not in text:
        assert got == py  # everything Python reads (but zones), the kernel reads the same way
    if "%" in text:
        assert got is None  # no zone index
    if got is not None and py is None:
        # The kernel is looser only about leading zeros.
        assert any(len(g) > 4 for g in text.replace(".", ":").split(":")) or any(
            len(p) > 1 and p.startswith("0") for p in text.split(":")[-1].split(".")
        ), text


def test_mac_pton() -> None:
    assert mac_pton("AA:bb:cc:dd:ee:ff") == "aa:bb:cc:dd:ee:ff"
    assert mac_pton("aa:bb:cc:dd:ee:ffjunk") == "aa:bb:cc:dd:ee:ff"  # rest is not read
    for bad in ("aa:bb:cc:dd:ee:f", "aa-bb-cc-dd-ee-ff", "aabb.ccdd.eeff.00", "gg:bb:cc:dd:ee:ff"):
        assert mac_pton(bad) is None


# -- one target -------------------------------------------------------------------------------


def test_full_target() -> None:
    t = ok("+r4444@10.0.0.2/eth1,9353@10.0.0.1/12:34:56:78:9A:bc")
    assert t == BootTarget(
        remote_ip=V4("10.0.0.1"), local_ip=V4("10.0.0.2"), local_port=4444, remote_port=9353,
        dev_name="eth1", remote_mac="12:34:56:78:9a:bc", extended=True, release=True,
    )


def test_minimal_target_takes_the_kernel_defaults() -> None:
    assert ok("@/,@10.0.0.1/") == BootTarget(remote_ip=V4("10.0.0.1"))


def test_ipv6_target() -> None:
    t = ok("@fd00::2/eth0,@fd00::1/")
    assert t.ipv6 and t.local_ip == V6("fd00::2")


@pytest.mark.parametrize(("text", "rest"), [
    ("", ""),  # an empty piece fails: no '@' at all
    ("6665", "6665"),  # no '@': everything left is shown
    ("abc@/,@10.0.0.1/", "abc"),  # the field, cut at its delimiter
    ("70000@/,@10.0.0.1/", "70000"),
    ("@10.0.0.2", "10.0.0.2"),
    ("@300.0.0.2/,@10.0.0.1/", "300.0.0.2"),
    ("@/eth0", "eth0"),
    ("@/eth0,6666", "6666"),
    ("@/eth0,@10.0.0.1", "10.0.0.1"),  # the trailing '/' is required
    ("@/eth0,@/", ""),
    ("@/eth0,@10.0.0.1/aa:bb", "aa:bb"),
    ("@10.0.0.2/eth0,@fd00::1/", "fd00::1"),  # family mismatch
    ("@fd00::2/eth0,@10.0.0.1/", "10.0.0.1"),
    ("@/zz:zz,@10.0.0.1/", "zz:zz"),  # 6.15+: <dev> with ':' must be a MAC
])
def test_parse_failures_name_the_kernel_rest(text: str, rest: str) -> None:
    assert error(text) == f"couldn't parse config at '{rest}'!"


def test_release_without_extended() -> None:
    assert error("r@/,@10.0.0.1/") == RELEASE_ERROR
    assert error("r+@/,@10.0.0.1/") == RELEASE_ERROR
    assert ok("+r@/,@10.0.0.1/").release


def test_whitespace_before_remote_port_warns_then_fails() -> None:
    e = parse_target("@/eth0, 6666@10.0.0.1/")
    assert e.target is None
    assert e.warnings == [WHITESPACE_WARNING]
    assert e.error == "couldn't parse config at ' 6666'!"


def test_long_device_name_is_truncated_with_a_warning() -> None:
    e = parse_target("@/abcdefghijklmnopq,@10.0.0.1/")
    assert e.target is not None and e.target.dev_name == "abcdefghijklmno"
    assert "keeps the first 15" in e.warnings[0]


def test_device_by_mac_on_new_kernels_and_as_a_name_on_old_ones() -> None:
    new = parse_target("@/52:54:00:12:34:56,@10.0.0.1/")
    assert new.target is not None and new.target.dev_mac == "52:54:00:12:34:56"
    assert new.target.dev_name == ""
    old = parse_target("@/zz:zz,@10.0.0.1/", dev_mac=False)
    assert old.target is not None and old.target.dev_name == "zz:zz"


def test_trailing_characters_after_the_mac_are_ignored_with_a_warning() -> None:
    e = parse_target("@/,@10.0.0.1/aa:bb:cc:dd:ee:ffXY")
    assert e.target is not None and e.target.remote_mac == "aa:bb:cc:dd:ee:ff"
    assert "XY" in e.warnings[0]


def test_fields_explain_each_part() -> None:
    e = parse_target("+@/eth0,514@10.0.0.1/")
    names = [f.name for f in e.fields]
    assert names == ["+", "src-port", "src-ip", "dev", "tgt-port", "tgt-ip", "tgt-macaddr"]
    assert "default" in e.fields[1].meaning
    assert e.fields[4].meaning == "collector UDP port 514"


# -- the whole parameter and cmdlineN counting ------------------------------------------------


def test_failed_pieces_take_no_index() -> None:
    r = parse_param("@/,@10.0.0.1/;bad;r@/,@10.0.0.2/;@/,@10.0.0.3/;")
    assert [e.name for e in r.entries] == ["cmdline0", None, None, "cmdline1", None]
    assert count_parsed("@/,@10.0.0.1/;bad;r@/,@10.0.0.2/;@/,@10.0.0.3/;") == 2
    assert not r.ok


def test_count_parsed_edge_cases() -> None:
    assert count_parsed("") == 0
    assert count_parsed(";") == 0
    assert count_parsed("@/,@10.0.0.1/") == 1
    # A target that parses but cannot be set up (missing device) still takes an index.
    assert count_parsed("@/nosuchdev,@10.0.0.1/;@/,@10.0.0.2/") == 2


def test_too_long_value_is_truncated_when_built_in_and_refused_as_a_module() -> None:
    one = "@/eth0,@10.0.0.1/"
    value = ";".join([one] * 16)  # 16*17+15 = 287 bytes
    r = parse_param(value)
    assert r.too_long and not r.ok
    assert r.truncated is not None and len(r.truncated) == 255
    # 255 bytes hold 14 whole targets and a cut fifteenth that no longer parses.
    assert count_parsed(value) == 14
    assert count_parsed(value, module=True) == 0


def test_strip_param() -> None:
    assert strip_param('netconsole="@/,@10.0.0.1/"') == "@/,@10.0.0.1/"
    assert strip_param("netconsole.netconsole=@/,@10.0.0.1/") == "@/,@10.0.0.1/"
    assert strip_param("@/,@10.0.0.1/") == "@/,@10.0.0.1/"


# -- formatting -------------------------------------------------------------------------------


def test_format_explicit_and_compact() -> None:
    t = BootTarget(remote_ip=V4("10.0.0.1"), local_ip=V4("10.0.0.2"))
    assert format_target(t) == "6665@10.0.0.2/eth0,6666@10.0.0.1/"
    assert format_target(t, compact=True) == "@10.0.0.2/,@10.0.0.1/"
    ext = BootTarget(remote_ip=V6("fd00::1"), extended=True, release=True,
                     remote_mac="aa:bb:cc:dd:ee:ff")
    assert format_target(ext) == "+r6665@/eth0,6666@fd00::1/aa:bb:cc:dd:ee:ff"


def test_format_param_falls_back_to_compact_then_refuses() -> None:
    t = BootTarget(remote_ip=V4("192.168.100.100"), local_ip=V4("192.168.100.101"),
                   remote_mac="aa:bb:cc:dd:ee:ff")
    explicit = format_target(t)
    n = 255 // (len(explicit) + 1) + 1  # one more than fits explicitly
    value = format_param([t] * n)
    assert value == ";".join([format_target(t, compact=True)] * n)
    with pytest.raises(InvalidInput, match="at most 255"):
        format_param([t] * 20)


@pytest.mark.parametrize("dev", ["a,b", "a;b", "a b", 'a"b'])
def test_format_refuses_device_names_with_separators(dev: str) -> None:
    with pytest.raises(InvalidInput, match="cannot be written"):
        format_target(BootTarget(remote_ip=V4("10.0.0.1"), dev_name=dev))


def test_format_refuses_release_without_extended_and_mixed_families() -> None:
    with pytest.raises(InvalidInput):
        format_target(BootTarget(remote_ip=V4("10.0.0.1"), release=True))
    with pytest.raises(InvalidInput):
        format_target(BootTarget(remote_ip=V4("10.0.0.1"), local_ip=V6("fd00::1")))


def test_from_state_and_from_spec() -> None:
    s = TargetState(
        name="t1", enabled=True, dev_name="eth0", local_ip="0.0.0.0", local_port=6665,
        remote_ip="10.0.0.1", remote_port=514, local_mac=None, remote_mac="FF:FF:FF:FF:FF:FF",
        extended=True, release=None, transmit_errors=None,
    )
    assert from_state(s) == BootTarget(remote_ip=V4("10.0.0.1"), remote_port=514,
                                       extended=True)
    spec = TargetSpec(remote_ip=V4("10.0.0.1"), dev_name="eth1", release=True)
    assert from_spec("x", spec) == BootTarget(remote_ip=V4("10.0.0.1"), dev_name="eth1",
                                              extended=True, release=True)
    with pytest.raises(InvalidInput, match="dev_name"):
        from_spec("x", TargetSpec(remote_ip=V4("10.0.0.1")))


# -- property-based round trip -----------------------------------------------------------------

_ifname = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=',;/":'),
    min_size=1, max_size=15,
)
_mac = st.lists(st.integers(0, 255), min_size=6, max_size=6).map(
    lambda b: ":".join(f"{x:02x}" for x in b))


@st.composite
def boot_targets(draw: st.DrawFn) -> BootTarget:
    v6 = draw(st.booleans())
    addrs = st.ip_addresses(v=6 if v6 else 4)
    extended = draw(st.booleans())
    by_mac = draw(st.booleans())
    return BootTarget(
        remote_ip=draw(addrs),
        local_ip=draw(st.none() | addrs),
        local_port=draw(st.integers(0, 65535)),
        remote_port=draw(st.integers(0, 65535)),
        dev_name="" if by_mac else draw(_ifname),
        dev_mac=draw(_mac) if by_mac else None,
        remote_mac=draw(_mac | st.just(BROADCAST_MAC)),
        extended=extended,
        release=extended and draw(st.booleans()),
    )


@given(boot_targets(), st.booleans())
def test_format_then_parse_gives_the_same_target(t: BootTarget, compact: bool) -> None:
    assume(t.dev_name not in (".", ".."))
    text = format_target(t, compact=compact)
    assert parse_target(text).target == t


@given(st.lists(boot_targets(), min_size=1, max_size=6))
def test_param_round_trip_and_count(ts: list[BootTarget]) -> None:
    try:
        value = format_param(ts)
    except InvalidInput:
        return  # too long even when compact: refused, never truncated
    assert len(value.encode()) <= 255
    report = parse_param(value)
    assert report.ok
    assert report.targets == ts
    assert count_parsed(value) == len(ts)


@given(st.text(alphabet="+r0123456789@/,.:;abcdef \t", max_size=80))
def test_parse_never_raises_and_reformats_stably(text: str) -> None:
    report = parse_param(text)
    assert count_parsed(text) == len(report.targets)
    for t in report.targets:
        try:
            text = format_target(t)
        except InvalidInput:
            assert any(c in t.dev_name for c in ' \t"'), t  # parsed, but not cmdline-safe
            continue
        assert parse_target(text).target == t
