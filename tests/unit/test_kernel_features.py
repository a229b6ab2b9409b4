"""sender/kernel.py: one place decides what the running kernel has."""

from __future__ import annotations

from pathlib import Path

import pytest

from netconsolectl.sender import kernel as kfeat
from netconsolectl.sender.emulation import Emulation


@pytest.mark.parametrize(("release", "want"), [
    ("6.1.0-57-amd64", dict(release_attr=False, userdata=False, transmit_errors=False,
                            sysdata=frozenset(), boot_targets_in_configfs=False,
                            max_userdata=0, bool_words=False, per_address_family=False)),
    ("6.12.117+deb12-amd64", dict(release_attr=True, userdata=True, transmit_errors=False,
                                  sysdata=frozenset(), boot_targets_in_configfs=True,
                                  max_userdata=16, bool_words=True)),
    ("6.15.2-arch1", dict(sysdata=frozenset({"cpu_nr", "taskname", "release"}),
                          sysdata_count_as_userdata=True, release_enabled_readable=False,
                          bootparam_dev_as_mac=True)),
    ("6.17.0-5-generic", dict(sysdata=frozenset(kfeat.SYSDATA_NAMES), transmit_errors=True,
                              max_userdata=16, per_address_family=False,
                              keeps_deactivated_targets=False)),
    ("6.19.1", dict(max_userdata=256, sysdata_count_as_userdata=False,
                    per_address_family=True)),
    ("7.0.0", dict(keeps_deactivated_targets=True, release_enabled_readable=True)),
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
    fs = Emulation(tmp_path, {}, profile="6.17")
    assert kfeat.detect(fs).sysdata == frozenset(kfeat.SYSDATA_NAMES)
    fs.mkdir("t")
    # As if msgid had not been backported to this 6.17-numbered kernel.
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

    for profile, expect in (("6.17", None), ("newest", "eth0")):
        fs = Emulation(tmp_path / profile, {}, profile=profile)
        fs.mkdir("t")
        state = Target(fs, "t").state()
        assert kfeat.awaiting_device(fs.kernel, state, device_present=False) == expect
        assert kfeat.awaiting_device(fs.kernel, state, device_present=True) is None
