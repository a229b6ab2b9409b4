"""Validators: every rule the command line enforces before the first write."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netconsolectl.errors import InvalidInput
from netconsolectl.sender.spec import (
    TargetSpec,
    parse_ip,
    parse_mac,
    parse_port,
    parse_userdata,
    validate_ifname,
    validate_target_name,
    validate_userdata_key,
    validate_userdata_value,
)


@given(st.ip_addresses())
def test_parse_ip_accepts_every_real_address(addr: ipaddress.IPv4Address | ipaddress.IPv6Address
                                             ) -> None:
    if addr.is_unspecified or (addr.version == 6 and addr.ipv4_mapped is not None):  # type: ignore[union-attr]
        with pytest.raises(InvalidInput):
            parse_ip(str(addr))
    else:
        assert parse_ip(str(addr)) == addr


@pytest.mark.parametrize("bad", ["", "abc", "300.1.1.1", "1.2.3", "fe80::1%eth0", "10.0.0.1/24",
                                 "0.0.0.0", "::", "::ffff:10.0.0.1", "1.2.3.4 5"])
def test_parse_ip_rejects(bad: str) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_ip(bad, "remote IP")
    assert "remote IP" in str(e.value)
    assert e.value.exit_code == 2


@given(st.binary(min_size=6, max_size=6), st.booleans())
def test_parse_mac_roundtrip(raw: bytes, upper: bool) -> None:
    text = ":".join(f"{b:02x}" for b in raw)
    assert parse_mac(text.upper() if upper else text) == text


@pytest.mark.parametrize("bad", ["aa-bb-cc-dd-ee-ff", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00",
                                 "aabb.ccdd.eeff", "gg:bb:cc:dd:ee:ff", "a:b:c:d:e:f", ""])
def test_parse_mac_rejects(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_mac(bad)


@given(st.integers())
def test_parse_port_range(n: int) -> None:
    if 1 <= n <= 65535:
        assert parse_port(n) == n
    else:
        with pytest.raises(InvalidInput):
            parse_port(n)


def test_parse_port_rejects_text() -> None:
    with pytest.raises(InvalidInput):
        parse_port("http")


@given(st.text(min_size=0, max_size=20))
def test_ifname_rules(name: str) -> None:
    ok = (
        0 < len(name.encode("utf-8", "surrogateescape")) < 16
        and name not in (".", "..")
        and not any(c in name for c in "/:")
        and not any(c.isspace() for c in name)
    )
    if ok:
        assert validate_ifname(name) == name
    else:
        with pytest.raises(InvalidInput):
            validate_ifname(name)


def test_ifname_limits() -> None:
    assert validate_ifname("a" * 15)
    with pytest.raises(InvalidInput, match="at most 15"):
        validate_ifname("a" * 16)


@given(st.text(max_size=80))
def test_target_name_never_escapes_the_directory(name: str) -> None:
    try:
        validate_target_name(name)
    except InvalidInput:
        return
    assert "/" not in name and name not in (".", "..") and not name.startswith((".", "-"))
    assert not any(c.isspace() for c in name) and 0 < len(name) <= 64


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a b", "-x", ".hidden", "x" * 65, "t\n"])
def test_target_name_rejects(bad: str) -> None:
    with pytest.raises(InvalidInput):
        validate_target_name(bad)


def test_userdata_key_limits() -> None:
    assert validate_userdata_key("k" * 53)
    for bad in ["k" * 54, "", "a/b", "a=b", "a b", ".", "..", "a\x01"]:
        with pytest.raises(InvalidInput):
            validate_userdata_key(bad)


@given(st.text(max_size=250))
def test_userdata_value_limits(value: str) -> None:
    size = len(value.encode("utf-8", "surrogateescape"))
    if size <= 199 and not any(c in value for c in "\n\r\0"):
        assert validate_userdata_value("k", value) == value
    else:
        with pytest.raises(InvalidInput):
            validate_userdata_value("k", value)


def test_parse_userdata() -> None:
    assert parse_userdata("rack=r7") == ("rack", "r7")
    assert parse_userdata("note=a=b") == ("note", "a=b")
    assert parse_userdata("gone=") == ("gone", "")
    with pytest.raises(InvalidInput, match="KEY=VALUE"):
        parse_userdata("novalue")


def test_spec_family_mismatch() -> None:
    with pytest.raises(InvalidInput, match="different families"):
        TargetSpec(local_ip=parse_ip("192.0.2.1"), remote_ip=parse_ip("2001:db8::1")).check()


def test_spec_from_dict() -> None:
    spec = TargetSpec.from_dict(
        {"remote_ip": "192.0.2.1", "remote_port": 514, "extended": True,
         "userdata": {"rack": "r7"}}, where="target t1")
    assert spec.remote_port == 514 and spec.extended and spec.userdata == {"rack": "r7"}
    with pytest.raises(InvalidInput, match="target t1: unknown key"):
        TargetSpec.from_dict({"remote_ipp": "x"}, where="target t1")
    with pytest.raises(InvalidInput, match="target t1: invalid remote port"):
        TargetSpec.from_dict({"remote_ip": "192.0.2.1", "remote_port": 0}, where="target t1")
    with pytest.raises(InvalidInput, match="extended must be true or false"):
        TargetSpec.from_dict({"extended": "yes"})
