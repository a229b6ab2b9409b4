"""sender/kernel.py: one place decides what the running kernel has."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from netconsolectl.sender import kernel as kfeat
from netconsolectl.sender.emulation import Emulation


@pytest.mark.parametrize(("release", "want"), [
    ("6.1.0-57-amd64", dict(release_attr=False, userdata=False, transmit_errors=False,
                            sysdata=frozenset(), boot_targets_in_configfs=False,
                            max_userdata=0, bool_words=False, family_switch_in_place=False)),
    ("6.12.117+deb12-amd64", dict(release_attr=True, userdata=True, transmit_errors=False,
                                  sysdata=frozenset(), boot_targets_in_configfs=True,
                                  max_userdata=16, bool_words=True,
                                  family_switch_in_place=False, enabled_accepts_e=False)),
    ("6.15.2-arch1", dict(sysdata=frozenset({"cpu_nr", "taskname", "release"}),
                          sysdata_count_as_userdata=True, release_enabled_readable=False,
                          bootparam_dev_as_mac=True)),
    # Measured on Debian's 6.18.15: in-place family switch, 16 shared slots, E2BIG at 200
    # bytes, the release_enabled read bug, targets disabled for good, e/d for booleans, a
    # legacy console, dev_name cut to 15 bytes.
    ("6.18.15+deb13-amd64", dict(sysdata=frozenset(kfeat.SYSDATA_NAMES), transmit_errors=True,
                                 max_userdata=16, sysdata_count_as_userdata=True,
                                 family_switch_in_place=True, overlong_value_errno=errno.E2BIG,
                                 release_enabled_readable=False,
                                 keeps_deactivated_targets=False, enabled_accepts_e=True,
                                 nbcon_console=False, dev_name_truncates=True)),
    # Measured on Debian's 7.3.4: 256 slots, EMSGSIZE, readable release_enabled, deactivated
    # targets, an nbcon console, ENAMETOOLONG for a long dev_name.
    ("7.3.4+deb13-amd64", dict(max_userdata=256, sysdata_count_as_userdata=False,
                               family_switch_in_place=True, overlong_value_errno=errno.EMSGSIZE,
                               release_enabled_readable=True, keeps_deactivated_targets=True,
                               enabled_accepts_e=True, nbcon_console=True,
                               dev_name_truncates=False)),
])
def test_features_by_release(release: str, want: dict[str, object]) -> None:
    k = kfeat.for_release(release)
    assert {name: getattr(k, name) for name in want} == want


def test_unparsable_release_is_the_newest() -> None:
    k = kfeat.for_release("custom")
    assert k.version == kfeat.NEWEST and k.notes


def test_refusal_message_names_the_minimum_version() -> None:
    k = kfeat.for_release("6.1.0-57-amd64")
    assert k.lacks("--release", kfeat.RELEASE) == (
        "--release needs Linux 6.6 or newer; this kernel is 6.1.0-57-amd64")


def test_files_of_a_target_win_over_the_release_string(tmp_path: Path) -> None:
    """A distribution kernel may backport a feature: the attribute files decide."""
    fs = Emulation(tmp_path, {}, profile="6.18")
    assert kfeat.detect(fs).sysdata == frozenset(kfeat.SYSDATA_NAMES)
    fs.mkdir("t")
    # As if msgid had not been backported to this 6.18-numbered kernel.
    (fs.path("t/userdata/msgid_enabled")).unlink()
    (fs.path("t/transmit_errors")).unlink()
    k = kfeat.detect(fs)
    assert k.from_files and "msgid" not in k.sysdata and not k.transmit_errors


def test_detect_creates_nothing(tmp_path: Path) -> None:
    fs = Emulation(tmp_path, {}, profile="6.12")
    kfeat.detect(fs)
    assert fs.listdir() == []


def test_awaiting_device_only_where_the_kernel_resumes(tmp_path: Path) -> None:
    from netconsolectl.sender.target import Target

    for profile, expect in (("6.18", None), ("7.3", "eth0")):
        fs = Emulation(tmp_path / profile, {}, profile=profile)
        fs.mkdir("t")
        state = Target(fs, "t").state()
        assert kfeat.awaiting_device(fs.kernel, state, device_present=False) == expect
        assert kfeat.awaiting_device(fs.kernel, state, device_present=True) is None


@pytest.mark.parametrize(("release_read", "taskname_read", "known"), [
    (True, True, False), (False, False, False), (True, False, True), (False, True, True),
    (None, True, False),
])
def test_release_sysdata_known_from_the_reads(release_read: bool | None,
                                              taskname_read: bool | None, known: bool) -> None:
    """Where the read bug may apply, two different answers prove the read is true (a buggy
    kernel always reads taskname's bit): a stable kernel with the fix is recognised."""
    buggy = kfeat.for_release("6.18.15+deb13-amd64")
    assert kfeat.release_sysdata_known(buggy, release_read, taskname_read) is known
    assert kfeat.release_sysdata_known(kfeat.for_release("7.3.4"), release_read,
                                       taskname_read) is True


def test_target_status_tells_deactivated_from_disabled(tmp_path: Path) -> None:
    from netconsolectl.sender.target import Target

    fs = Emulation(tmp_path, {}, profile="7.3")
    fs.mkdir("t")
    state = Target(fs, "t").state()
    assert kfeat.target_status(fs.kernel, state, False, False) == "deactivated"
    assert kfeat.target_status(fs.kernel, state, False, True) == "disabled"  # cancelled
    assert kfeat.target_status(fs.kernel, state, True, False) == "disabled"
    old = kfeat.for_release("6.18.15")
    assert kfeat.target_status(old, state, False, False) == "disabled"


LEGACY = "ttyS0                -W- (EC    a)    4:64\nnetcon0              -W- (E      )\n"
NBCON = "ttyS0                -W- (EC N  a)    4:64\nnetcon_ext0          -W- (E  N   )\n"


@pytest.mark.parametrize(("release", "consoles", "timeout", "delivered"), [
    ("6.18.15", LEGACY, -1, True),  # measured: a legacy console sends the panic
    ("7.3.4", NBCON, -1, False),  # measured: restarted before the final flush, nothing sent
    ("7.3.4", NBCON, 30, False),  # a timeout restarts before the flush as well
    ("7.3.4", NBCON, 0, True),  # measured: kernel.panic=0, the panic text arrives
    ("7.3.4", "ttyS0 -W- (EC N  a)    4:64\n", -1, False),  # no target yet: by release
    ("6.18.15", None, -1, True),
    ("7.3.4", NBCON, None, False),  # kernel.panic unreadable: not promised
])
def test_panic_capture_from_what_the_kernel_shows(release: str, consoles: str | None,
                                                  timeout: int | None, delivered: bool) -> None:
    """Issue 22: 7.3 sent no panic text. Decided from /proc/consoles (nbcon flag N) and
    kernel.panic, with the setting that makes it deliver as the fix."""
    got = kfeat.panic_capture(kfeat.for_release(release), consoles, timeout)
    assert got.delivered is delivered, got
    if not delivered:
        assert got.fix is not None and "kernel.panic=0" in got.fix
        assert "nbcon" in got.evidence
