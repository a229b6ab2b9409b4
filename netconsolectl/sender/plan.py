"""Desired state -> ordered configfs operations -> apply -> read back.

The kernel dictates the order (drivers/net/netconsole.c):

* every parameter store fails with EINVAL while the target is enabled
  ("target (X) is enabled, disable to update parameters"), so an enabled target is disabled
  first and enabled again last;
* storing the value ``enabled`` already has fails with EINVAL ("network logging has already
  started/stopped"), so ``enabled`` is written only when it changes;
* ``release`` without ``extended`` is refused when enabling, so both are settled first;
* up to 6.18 the first IPv6 address written sets a sticky per-target ``ipv6`` flag; later
  IPv4 stores fail with EINVAL until the directory is recreated, so going back to IPv4
  recreates the target (not on kernels where each address has its own family);
* userdata entries and the sysdata toggles (6.15+) may change while enabled; userdata must be
  removed before the target's rmdir (configfs refuses to rmdir a directory with user-created
  children: ENOTEMPTY); on 6.15-6.18 enabled toggles count toward the 16 userdata entries, so
  toggles go off and keys go away before anything is added.

What the kernel in use lacks is refused before the first write
(:func:`check_kernel`), from :class:`~netconsolectl.sender.kernel.Kernel`.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import shlex
from dataclasses import dataclass, field, replace
from typing import Literal

from netconsolectl.errors import (
    DENIED,
    ENOTSUPP,
    InvalidInput,
    KernelRefused,
    NetconsoleError,
    TargetExists,
    Unavailable,
    errno_name,
    from_oserror,
)
from netconsolectl.facts import SYSFS_NET, is_unset
from netconsolectl.sender import kernel as kfeat
from netconsolectl.sender.configfs import ConfigFS
from netconsolectl.sender.kernel import Kernel
from netconsolectl.sender.machine import Machine
from netconsolectl.sender.spec import IPAddress, TargetSpec, parse_ip
from netconsolectl.sender.target import PARAM_ATTRS, Target, TargetState


@dataclass(frozen=True)
class Op:
    """One configfs operation, relative to ``<root>/netconsole``."""

    kind: Literal["mkdir", "rmdir", "write"]
    rel: str
    value: str = ""
    #: an errno that is the expected answer, not a failure (0: none): writing enabled=0 to a
    #: deactivated target fails with EINVAL and still does what is wanted (cancels the resume)
    tolerate: int = 0

    @property
    def attr(self) -> str:
        return self.rel.rsplit("/", 1)[-1]

    def describe(self, fs: ConfigFS) -> str:
        """The operation as the shell command an admin would type."""
        path = shlex.quote(str(fs.path(self.rel)))
        if self.kind == "write":
            tail = f" || true  # {errno_name(self.tolerate)} expected" if self.tolerate else ""
            return f"echo {shlex.quote(self.value)} > {path}{tail}"
        return f"{self.kind} {path}"

    def run(self, fs: ConfigFS) -> None:
        if self.kind == "mkdir":
            fs.mkdir(self.rel)
        elif self.kind == "rmdir":
            fs.rmdir(self.rel)
        else:
            fs.write(self.rel, self.value)


@dataclass
class Plan:
    """The ordered operations for one target, plus what the user should be told."""

    name: str
    ops: list[Op] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    creates: bool = False
    removes: bool = False
    desired: TargetSpec = field(default_factory=TargetSpec)
    #: What changes, in words (``remote_ip 192.0.2.50 -> 192.0.2.1``, ``userdata rack added``).
    summary: list[str] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(self.ops)

    def describe(self, fs: ConfigFS) -> list[str]:
        return [op.describe(fs) for op in self.ops]


def show_value(v: object) -> str:
    """A live or wanted value in a change summary."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return "unset" if v is None or v == "" else str(v)


def _fmt(attr: str, value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _settle_release(spec: TargetSpec, live: TargetState | None, notes: list[str]) -> TargetSpec:
    """``release`` needs ``extended``: imply it when the user did not say otherwise."""
    extended = spec.extended if spec.extended is not None else (live.extended if live else False)
    release = spec.release if spec.release is not None else (live.release if live else False)
    if release and not extended:
        if spec.extended is False and spec.release:
            raise InvalidInput(
                "--release needs the extended format, but --no-extended was given",
                hint="drop --no-extended, or pass --no-release",
            )
        if spec.release:
            notes.append("--release implies --extended (the kernel refuses release without it)")
            return replace(spec, extended=True)
        if spec.extended is None:
            # Left that way by something else; enabling will fail and explain() says why.
            return spec
        raise InvalidInput(
            "turning off the extended format would leave release on, which the kernel refuses",
            hint="pass --no-release as well",
        )
    return spec


def _final_addr(spec_ip: IPAddress | None, live_ip: str | None) -> IPAddress | None:
    if spec_ip is not None:
        return spec_ip
    return None if is_unset(live_ip) else parse_ip(str(live_ip))


def same_value(attr: str, want: object, have: object) -> bool:
    """Whether a live attribute (as TargetState types it) already has the wanted value.

    Compared by meaning, as the kernel prints: addresses as addresses (%pI6c may print an
    ISATAP address dotted), MACs in any case, and a missing extended/release attribute (an
    older kernel) as off.
    """
    if attr in ("local_ip", "remote_ip"):
        if not isinstance(have, str) or is_unset(have):
            return False
        try:
            return ipaddress.ip_address(have) == want
        except ValueError:
            return False
    if attr == "remote_mac":
        return isinstance(have, str) and have.lower() == str(want).lower()
    if attr in ("extended", "release"):
        return bool(have) == bool(want)
    return have == want


BOOT_NAME_PREFIX = "cmdline"


def _is_boot_name(name: str) -> bool:
    return name.startswith(BOOT_NAME_PREFIX) and name[len(BOOT_NAME_PREFIX):].isdigit()


def check_kernel(spec: TargetSpec, kernel: Kernel) -> None:
    """Refuse (exit 69, nothing written) what this kernel's netconsole does not have."""
    if spec.release and not kernel.release_attr:
        raise Unavailable(kernel.lacks("--release", kfeat.RELEASE),
                          hint="leave --release out; the receiver still gets every message")
    if any(spec.userdata.values()) and not kernel.userdata:
        raise Unavailable(kernel.lacks("--userdata", kfeat.USERDATA),
                          hint="leave --userdata out")
    if spec.sysdata:
        for name in kfeat.SYSDATA_NAMES:
            if name in spec.sysdata and name not in kernel.sysdata:
                raise Unavailable(kernel.lacks(f"--sysdata {name}", kfeat.SYSDATA_SINCE[name]),
                                  hint="leave it out of --sysdata")


def check_userdata_count(name: str, keys: int, toggles: int, kernel: Kernel) -> None:
    """Refuse (exit 2, nothing written) more userdata entries than the kernel allows: 16 on
    6.9-6.18 (enabled sysdata toggles count toward them on 6.15-6.18), 256 later
    (drivers/net/netconsole.c MAX_USERDATA_ITEMS, ``userdatum_make_item`` -> ENOSPC)."""
    limit = kernel.max_userdata
    counted = toggles if kernel.sysdata_count_as_userdata else 0
    if keys + counted <= limit:
        return
    what = f"{keys} userdata entries" + (f" and {counted} sysdata toggles" if counted else "")
    raise InvalidInput(
        f"{name} would have {what}; this kernel ({kernel.release}) allows at most {limit} "
        "per target" + (" (sysdata toggles count toward it)" if counted else ""),
        hint="remove entries with --userdata KEY=",
    )


def refuse_boot_name(name: str, kernel: Kernel) -> None:
    """``cmdline<N>`` names a boot-parameter target; before 6.7 configfs cannot reach it and
    ``mkdir cmdline<N>`` makes a second, ordinary target beside it (every message sent twice).
    """
    if _is_boot_name(name) and not kernel.boot_targets_in_configfs:
        raise InvalidInput(
            f"{name} names a boot-time target, which this kernel ({kernel.release}) does not "
            f"show in configfs (Linux {kfeat.fmt_version(kfeat.BOOT_TARGETS_IN_CONFIGFS)}+): "
            "it cannot be attached or changed at runtime",
            hint="change the boot parameter instead (`netconsolectl persist`), or use "
                 "another name for a runtime target",
        )


def _sysdata_ops(name: str, want: frozenset[str], have: dict[str, bool | None],
                 present: frozenset[str]) -> tuple[list[Op], list[Op]]:
    """(turn off, turn on) writes for the toggles; an unreadable one is always written
    (storing the current value succeeds)."""
    off: list[Op] = []
    on: list[Op] = []
    for s in kfeat.SYSDATA_NAMES:
        if s not in present:
            continue
        wanted = s in want
        if have.get(s) is wanted:
            continue
        op = Op("write", f"{name}/userdata/{kfeat.sysdata_file(s)}", "1" if wanted else "0")
        (on if wanted else off).append(op)
    return off, on


def _create_ops(name: str, spec: TargetSpec) -> list[Op]:
    ops = [Op("mkdir", name)]
    for attr in PARAM_ATTRS:
        value = getattr(spec, attr)
        if value is None or (attr in ("extended", "release") and not value):
            continue  # kernel default: not written (ip unset, mac broadcast, flags off)
        ops.append(Op("write", f"{name}/{attr}", _fmt(attr, value)))
    for key, value in spec.userdata.items():
        if value:
            ops += [Op("mkdir", f"{name}/userdata/{key}"),
                    Op("write", f"{name}/userdata/{key}/value", value)]
    for s in kfeat.SYSDATA_NAMES:
        if spec.sysdata and s in spec.sysdata:
            ops.append(Op("write", f"{name}/userdata/{kfeat.sysdata_file(s)}", "1"))
    if spec.enabled:
        ops.append(Op("write", f"{name}/enabled", "1"))
    return ops


def check_add(name: str, spec: TargetSpec, kernel: Kernel) -> None:
    """Everything about a new target the kernel in use would refuse, before discovery runs
    and before anything is written."""
    refuse_boot_name(name, kernel)
    check_kernel(spec, kernel)
    keys = sum(1 for v in spec.userdata.values() if v)
    check_userdata_count(name, keys, len(spec.sysdata or ()), kernel)


def plan_add(name: str, spec: TargetSpec, kernel: Kernel | None = None) -> Plan:
    """Create a target. ``spec`` must have ``remote_ip`` and ``dev_name`` by now.

    With ``kernel``, what it lacks is refused first (:func:`check_add`).
    """
    notes: list[str] = []
    spec = _settle_release(spec, None, notes).with_defaults().check()
    if kernel is not None:
        check_add(name, spec, kernel)
    if spec.remote_ip is None:
        raise InvalidInput("--remote-ip is required")
    plan = Plan(name=name, notes=notes, creates=True, desired=spec)
    plan.ops = _create_ops(name, spec)
    return plan


def _check_set(live: TargetState, spec: TargetSpec, kernel: Kernel | None) -> None:
    """What the kernel in use lacks or would refuse about this change (nothing written)."""
    if kernel is not None:
        check_kernel(spec, kernel)
        keys = {k for k in live.userdata if spec.userdata.get(k, live.userdata[k])}
        keys |= {k for k, v in spec.userdata.items() if v}
        toggles = spec.sysdata if spec.sysdata is not None else live.sysdata_on
        check_userdata_count(live.name, len(keys), len(toggles), kernel)
    final_local = _final_addr(spec.local_ip, live.local_ip)
    final_remote = _final_addr(spec.remote_ip, live.remote_ip)
    if final_local and final_remote and final_local.version != final_remote.version:
        raise InvalidInput(
            f"local address {final_local} and remote address {final_remote} would be of "
            "different families",
            hint="change --local-ip and --remote-ip together",
        )


def _needs_recreate(live: TargetState, spec: TargetSpec, kernel: Kernel | None) -> bool:
    """Up to 6.12 the first IPv6 address sets a sticky per-target flag and IPv4 stores fail
    (EINVAL) until the directory is recreated. 6.18 and 7.x switch the family in place (the
    last address written sets it), so nothing is recreated there; without a kernel to ask,
    the old rule holds."""
    final_remote = _final_addr(spec.remote_ip, live.remote_ip)
    if not live.ipv6 or final_remote is None or final_remote.version != 4:
        return False
    return not (kernel is not None and kernel.family_switch_in_place)


def _recreate(live: TargetState, spec: TargetSpec, plan: Plan, enabled: bool) -> Plan:
    name = live.name
    final_remote = _final_addr(spec.remote_ip, live.remote_ip)
    full = TargetSpec(
        dev_name=spec.dev_name or live.dev_name,
        local_ip=spec.local_ip,
        local_port=spec.local_port or live.local_port,
        remote_ip=final_remote,
        remote_port=spec.remote_port or live.remote_port,
        remote_mac=spec.remote_mac or live.remote_mac,
        extended=live.extended if spec.extended is None else spec.extended,
        release=live.release if spec.release is None else spec.release,
        userdata={k: v for k, v in {**live.userdata, **spec.userdata}.items() if v},
        enabled=enabled,
        sysdata=spec.sysdata if spec.sysdata is not None else live.sysdata_on,
    )
    plan.notes.append(
        "this kernel cannot switch a target from IPv6 back to IPv4 in place; "
        f"{name} is removed and created again"
        + (" (it stops being the boot target)" if live.is_boot_target else "")
    )
    plan.ops = [Op("rmdir", f"{name}/userdata/{k}") for k in live.userdata]
    plan.ops += [Op("rmdir", name), *_create_ops(name, full)]
    plan.summary.append(f"remote_ip {show_value(live.remote_ip)} -> {final_remote}")
    plan.summary.append("recreated")
    return plan


def _param_ops(live: TargetState, spec: TargetSpec, summary: list[str]) -> list[Op]:
    """Writes of the parameters that differ, in the kernel's attribute order. Where the
    family switches in place, the address written last sets the family of both; both
    addresses change together then (checked by :func:`_check_set`)."""
    ops: list[Op] = []
    for attr in PARAM_ATTRS:
        want = getattr(spec, attr)
        if want is None:
            continue
        if not same_value(attr, want, getattr(live, attr)):
            ops.append(Op("write", f"{live.name}/{attr}", _fmt(attr, want)))
            summary.append(f"{attr} {show_value(getattr(live, attr))} -> {show_value(want)}")
    return ops


def _userdata_ops(live: TargetState, spec: TargetSpec, kernel: Kernel | None,
                  summary: list[str]) -> list[Op]:
    """Userdata and sysdata changes, which the kernel takes while enabled: toggles off and
    keys removed first (6.15-6.18 count both toward 16), then keys added, then toggles on."""
    name = live.name
    removals: list[Op] = []
    additions: list[Op] = []
    for key, value in spec.userdata.items():
        rel = f"{name}/userdata/{key}"
        if not value:
            if key in live.userdata:
                removals.append(Op("rmdir", rel))
                summary.append(f"userdata {key} removed")
            continue
        if key not in live.userdata:
            additions.append(Op("mkdir", rel))
            summary.append(f"userdata {key} added")
        elif live.userdata[key] != value:
            summary.append(f"userdata {key} {live.userdata[key]} -> {value}")
        if live.userdata.get(key) != value:
            additions.append(Op("write", f"{rel}/value", value))
    toggles_off, toggles_on = _sysdata_ops(
        name, spec.sysdata, live.sysdata or {},
        kernel.sysdata if kernel else frozenset(live.sysdata or ()),
    ) if spec.sysdata is not None else ([], [])
    if toggles_off or toggles_on:
        on = sorted(op.attr.removesuffix("_enabled") for op in toggles_on)
        off = sorted(op.attr.removesuffix("_enabled") for op in toggles_off)
        summary.append("sysdata" + (f" +{','.join(on)}" if on else "")
                       + (f" -{','.join(off)}" if off else ""))
    return toggles_off + removals + additions + toggles_on


def _deactivated_ops(live: TargetState, spec: TargetSpec, params: list[Op], device: str,
                     plan: Plan) -> list[Op]:
    """A target the kernel deactivated (7.x: its device is gone; resumed, link forced up, when
    the device registers again). Parameters may be written (the kernel refuses them only
    while enabled). ``enabled`` is written only to disable: that write fails with EINVAL but
    cancels the resume, which is what disabling means here."""
    name = live.name
    if spec.enabled is False:
        plan.notes.append(
            f"{name} is deactivated ({device} is gone) and the kernel would resume it when "
            f"{device} returns; writing enabled=0 cancels that resume (the kernel answers "
            "EINVAL, as for a target already stopped)")
        plan.summary.append("resume cancelled")
        return [*params, Op("write", f"{name}/enabled", "0", tolerate=errno.EINVAL)]
    if any(op.attr == "dev_name" for op in params):
        # Moved to another device: nothing to wait for; enabling (which ends the
        # deactivated state) sends through the new device now.
        plan.notes.append(f"{name} was deactivated ({device} is gone); it is enabled on its "
                          "new device")
        plan.summary.append("enabled")
        return [*params, Op("write", f"{name}/enabled", "1")]
    if spec.enabled or params:
        plan.notes.append(
            f"{name} is deactivated: {device} is gone, and the kernel resumes it by itself "
            f"when {device} registers again (bringing the link up); enabled is not written "
            "now, since that would cancel the resume")
    return params


def plan_set(live: TargetState, spec: TargetSpec, kernel: Kernel | None = None,
             waiting_for: str | None = None) -> Plan:
    """Change an existing target, writing only what differs.

    With ``kernel``, what it lacks is refused first and its limits are checked.
    ``waiting_for`` names the absent device of a target the kernel deactivated and will
    resume by itself (:func:`~netconsolectl.sender.kernel.awaiting_device`); see
    :func:`_deactivated_ops`.
    """
    notes: list[str] = []
    spec = _settle_release(spec, live, notes)
    _check_set(live, spec, kernel)
    enabled = live.enabled if spec.enabled is None else spec.enabled
    plan = Plan(name=live.name, notes=notes, desired=spec)
    if _needs_recreate(live, spec, kernel):
        return _recreate(live, spec, plan, enabled)
    params = _param_ops(live, spec, plan.summary)
    # Userdata may change while enabled, so it goes first: if the kernel refuses an entry
    # (ENOSPC), the target is still running with its old parameters.
    plan.ops = _userdata_ops(live, spec, kernel, plan.summary)
    if enabled != live.enabled:
        plan.summary.append("enabled" if enabled else "disabled")
    if waiting_for is not None:
        plan.ops += _deactivated_ops(live, spec, params, waiting_for, plan)
    elif params and live.enabled:
        plan.ops += [Op("write", f"{live.name}/enabled", "0"), *params]
        if enabled:
            plan.ops.append(Op("write", f"{live.name}/enabled", "1"))
    else:
        plan.ops += params
        if enabled != live.enabled:
            plan.ops.append(Op("write", f"{live.name}/enabled", "1" if enabled else "0"))
    return plan


def plan_remove(live: TargetState) -> Plan:
    plan = Plan(name=live.name, removes=True)
    plan.ops = [Op("rmdir", f"{live.name}/userdata/{k}") for k in live.userdata]
    plan.ops.append(Op("rmdir", live.name))
    if live.is_boot_target:
        plan.notes.append(f"{live.name} is the boot-time target; removing it destroys it for good")
    return plan


# -- applying -------------------------------------------------------------------------------


def _explain_enable(code: int, name: str, live: Target, system: Machine
                    ) -> NetconsoleError | None:
    """Why the kernel refused ``enabled=1`` (netpoll setup, release without extended)."""
    dev = live.read("dev_name") or "?"
    if code == errno.ENODEV:
        return KernelRefused(
            f"cannot enable {name}: there is no network device {dev!r} "
            "(in this network namespace)",
            hint="check `ip link` and pass --dev with an existing Ethernet interface",
            errno=code,
        )
    if code == errno.EBUSY:
        master = system.master_of(dev)
        if master:
            return KernelRefused(
                f"cannot enable {name}: {dev} is a port of {master} "
                "(bond/team/bridge members cannot carry netconsole)",
                hint=f"use --dev {master}", errno=code,
            )
        return KernelRefused(
            f"cannot enable {name}: {dev} is enslaved to a bond, team or bridge",
            hint="use the master device as --dev", errno=code,
        )
    if code == ENOTSUPP:
        return KernelRefused(
            f"cannot enable {name}: the driver of {dev} does not support netpoll",
            hint="use another interface (a wired Ethernet NIC)", errno=code,
        )
    if code == errno.EDESTADDRREQ:
        return KernelRefused(
            f"cannot enable {name}: {dev} has no usable IP address of the remote's family",
            hint="add an address to the interface or pass --local-ip", errno=code,
        )
    if code == errno.EINVAL:
        if live.read("release") == "1" and live.read("extended") == "0":
            return InvalidInput(f"cannot enable {name}: release needs the extended format",
                                hint="pass --extended", errno=code)
        return KernelRefused(f"the kernel refused to enable {name} (EINVAL)",
                             hint="`dmesg | tail` shows the kernel's reason", errno=code)
    return None


def _explain_userdata(code: int, op: Op, name: str) -> NetconsoleError | None:
    """Why the kernel refused a userdata entry, its value or a sysdata toggle."""
    if op.kind == "mkdir" and "/userdata/" in op.rel:
        key = op.attr
        if code == errno.ENOSPC:
            return KernelRefused(
                f"cannot add userdata {key!r} to {name}: the kernel's limit of entries per "
                "target is reached (16 on Linux 6.9-6.18, 256 on 7.x)",
                hint="remove an entry first (--userdata KEY=)", errno=code,
            )
        if code == errno.ENAMETOOLONG:
            return InvalidInput(f"userdata key {key!r} is too long for this kernel", errno=code)
        if code == errno.ENOENT:
            return Unavailable(
                f"this kernel has no userdata support (Linux 6.9+): cannot add {key!r}",
                errno=code,
            )
    if op.kind == "write" and op.attr.endswith("_enabled") and code == errno.ENOSPC:
        return KernelRefused(
            f"cannot turn on {op.attr} of {name}: userdata entries and sysdata toggles together "
            "reach this kernel's limit of 16 (Linux 6.15-6.18)",
            hint="remove a userdata entry first (--userdata KEY=)", errno=code,
        )
    if op.kind == "write" and op.rel.endswith("/value") and code in (errno.EMSGSIZE, errno.E2BIG):
        # E2BIG: exactly 200 bytes up to 6.18 (the first 199 were stored); EMSGSIZE on 7.x
        # and for anything longer everywhere.
        return InvalidInput(
            f"userdata value for {op.rel.split('/')[-2]!r} is too long for this kernel "
            f"({len(op.value.encode())} bytes)",
            errno=code,
        )
    return None


def _explain_other(code: int, op: Op, name: str, system: Machine) -> NetconsoleError | None:
    path = system.configfs.path(op.rel)
    if op.kind == "mkdir" and op.rel == name:
        if code == errno.EEXIST:
            return TargetExists(f"target {name!r} already exists", errno=code,
                                hint="use `netconsolectl set` to change it")
        if code == errno.ENOENT:
            return Unavailable(f"{system.configfs.base} vanished", errno=code)
    if op.kind == "write" and code == errno.ENOENT:
        return Unavailable(
            f"this kernel has no {op.attr!r} attribute for netconsole targets",
            hint="`release` needs Linux 6.6+, userdata 6.9+", errno=code,
        )
    if op.kind == "rmdir" and code == errno.ENOTEMPTY:
        return KernelRefused(f"cannot remove {path}: it still has entries", errno=code,
                             hint="remove its userdata entries first")
    return None


def explain(e: OSError, op: Op, live: Target, system: Machine) -> NetconsoleError:
    """Turn a kernel errno into a message that says what happened and what to do."""
    code = e.errno or 0
    path = system.configfs.path(op.rel)
    if code in DENIED:
        return from_oserror(e, f"permission denied: cannot {op.kind} {path}")
    found: NetconsoleError | None = None
    if op.kind == "write" and op.attr == "enabled" and op.value == "1":
        found = _explain_enable(code, live.name, live, system)
    found = found or _explain_userdata(code, op, live.name) or _explain_other(
        code, op, live.name, system)
    if found is not None:
        return found
    return KernelRefused(
        f"cannot {op.kind} {path}: {e.strerror or errno_name(code)} ({errno_name(code)})",
        hint="`dmesg | tail` shows the kernel's reason",
        errno=code,
    )


def _rollback_create(fs: ConfigFS, name: str) -> None:
    """Undo a failed add: userdata entries first, then the target (rmdir works while enabled)."""
    t = Target(fs, name)
    if not t.exists():
        return
    for u in t.userdata():
        with contextlib.suppress(OSError):
            fs.rmdir(u.rel)
    with contextlib.suppress(OSError):
        fs.rmdir(name)


def apply(system: Machine, plan: Plan) -> None:
    """Run the plan in order, then verify it; on failure undo a creation, or say what is left.

    Raises :class:`KernelRefused` when the kernel did not keep what was written.
    """
    fs = system.configfs
    target = Target(fs, plan.name)
    disabled_here = False
    for i, op in enumerate(plan.ops):
        try:
            op.run(fs)
        except OSError as e:
            if op.tolerate and e.errno == op.tolerate:
                continue
            err = explain(e, op, target, system)
            if plan.creates:
                _rollback_create(fs, plan.name)
                err.message += "; nothing was left behind"
            elif disabled_here and op.attr == "enabled" and op.value == "1":
                err.message += f"; {plan.name} is left disabled with the new values"
            elif i > 0:
                err.message += f" (after {i} of {len(plan.ops)} operations)"
            raise err from None
        if op.kind == "write" and op.attr == "enabled" and op.value == "0":
            disabled_here = True
        if plan.creates and op.kind == "mkdir" and op.rel == plan.name:
            # A kernel built with NETCONSOLE_EXTENDED_LOG / PREPEND_RELEASE starts targets
            # with extended/release on: turn them off when the plan leaves them unset.
            fixups = [
                Op("write", f"{plan.name}/{attr}", "0")
                for attr in ("release", "extended")
                if not getattr(plan.desired, attr) and target.read(attr) == "1"
            ]
            for fix in fixups:
                try:
                    fix.run(fs)
                except OSError as e:
                    _rollback_create(fs, plan.name)
                    raise explain(e, fix, target, system) from None
    problems = verify(system, plan)
    if problems:
        raise KernelRefused(
            "the kernel did not keep what was written: " + "; ".join(problems),
            hint="`dmesg | tail` may say why",
        )


def verify(system: Machine, plan: Plan) -> list[str]:
    """Plan again against what the kernel now has; whatever planning still wants was not kept.

    As libnmstate verifies: read the target back and require that planning yields no
    operation. The comparison is the planner's own (:func:`same_value`), so verifying and
    planning cannot disagree about what "the same value" means.
    """
    fs = system.configfs
    target = Target(fs, plan.name)
    if plan.removes:
        return [f"{fs.path(plan.name)} still exists"] if target.exists() else []
    if not target.exists():
        return [f"{fs.path(plan.name)} does not exist"]
    live = target.state()
    again = plan_set(live, plan.desired)
    problems = []
    unreadable = "/" + kfeat.sysdata_file("release")
    trust_release = kfeat.for_release(fs.kernel_release()).release_enabled_readable
    for op in again.ops:
        if not trust_release and op.rel.endswith(unreadable):
            continue  # 6.15 until the 2026 fix: release_enabled reads the taskname bit
        if op.kind != "write":
            problems.append(f"{fs.path(op.rel)} " + ("is missing" if op.kind == "mkdir"
                                                     else "still exists"))
        elif op.attr != "enabled" or plan.desired.enabled not in (None, live.enabled):
            # An "enabled" write that only brackets a parameter change is not a problem of
            # its own; the parameter is reported.
            try:
                have = fs.read(op.rel)
            except OSError as e:
                have = f"<{e.strerror}>"
            problems.append(f"{fs.path(op.rel)} reads {have!r}, expected {op.value!r}")
    return problems


def _device_present(system: Machine, live: TargetState) -> bool:
    dev = live.dev_name or ""
    return bool(dev) and (system.sysfs / SYSFS_NET / dev).exists()


def waiting_for(system: Machine, kernel: Kernel, live: TargetState) -> str | None:
    """The absent device a target may be waiting for (see kernel.awaiting_device)."""
    return kfeat.awaiting_device(kernel, live, _device_present(system, live))


def with_status(system: Machine, kernel: Kernel, live: TargetState, *,
                disabled_on_purpose: bool) -> TargetState:
    """``live`` with its status: enabled, disabled, or deactivated (7.x, device gone, the
    kernel resumes it); ``disabled_on_purpose``: `disable` cancelled any resume."""
    status = kfeat.target_status(kernel, live, _device_present(system, live),
                                 disabled_on_purpose)
    return replace(live, status=status)
