"""Making the configuration survive a reboot: the systemd unit and the boot parameter.

Two mechanisms, which complement each other:

* the **service** (``netconsolectl.service``, shipped in this package) runs ``watch`` once the
  network is online: the configuration file is applied at every boot with fresh discovery
  (userdata included) and kept true while the network changes; it cannot catch what happens
  before it runs. ``netconsolectl-apply.service`` (``--oneshot``) only applies it once;
* the **boot parameter** creates the targets when netconsole itself starts, and those targets
  replay the kernel log buffer when they register (boot targets get CON_PRINTBUFFER in
  drivers/net/netconsole.c ``init_netconsole``), so earlier boot messages are sent too.
  Where it goes depends on how the kernel was built:

  - netconsole **built in** (CONFIG_NETCONSOLE=y): ``netconsole=VALUE`` on the kernel
    command line (a GRUB drop-in in ``/etc/default/grub.d/`` here; then ``update-grub``);
  - netconsole a **module** (Debian, Ubuntu, Fedora, Arch): the kernel ignores a plain
    ``netconsole=``; the value goes into ``/etc/modprobe.d/`` as ``options netconsole
    netconsole=VALUE`` (``netconsole.netconsole=VALUE`` on the command line works too), and
    the module must be loaded at boot (``/etc/modules-load.d/``). A panic before the module
    loads is not sent.

With both, name the targets in the configuration ``cmdline0``, ``cmdline1``... in boot
parameter order, so that ``apply`` adopts the boot targets (and adds their userdata) instead of
creating duplicates.

Every path lives under a root directory (``/`` by default) so images can be prepared offline
and tests can run without touching the host.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from netconsolectl import hostutil
from netconsolectl.errors import (
    WRITE_DENIED,
    InvalidInput,
    NetconsoleError,
    Unavailable,
    from_oserror,
)
from netconsolectl.facts import SYSTEMD_RUNNING, SYSTEMD_UNIT_DIR
from netconsolectl.hostutil import update_file

UNIT_NAME = "netconsolectl.service"  # runs `watch`
APPLY_UNIT_NAME = "netconsolectl-apply.service"  # runs `apply` once
SHIPPED_COMMAND = "/usr/bin/netconsolectl"
SHIPPED_CONFIG = "/etc/netconsolectl.toml"

NetconsoleKind = Literal["module", "builtin", "missing", "unknown"]


def unit_name(*, oneshot: bool = False) -> str:
    return APPLY_UNIT_NAME if oneshot else UNIT_NAME


def shipped_unit(*, oneshot: bool = False) -> str:
    """A unit file as shipped in the package (valid as is for /usr/bin/netconsolectl)."""
    name = unit_name(oneshot=oneshot)
    return (resources.files("netconsolectl") / "data" / name).read_text(encoding="utf-8")


def unit_word(word: str) -> str:
    """One ExecStart= word: specifiers (%) and variables ($) escaped, quoted when needed."""
    w = word.replace("%", "%%").replace("$", "$$")
    if any(c in w for c in " \t\"'\\;") or not w:
        w = '"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return w


def render_unit(command: list[str], config: str = SHIPPED_CONFIG, *, oneshot: bool = False
                ) -> str:
    """The unit (``watch``, or ``apply`` once) with this installation's command and file."""
    if not config.startswith("/"):
        raise InvalidInput(f"the configuration path in the unit must be absolute, not {config!r}")
    verb = "apply" if oneshot else "watch"
    exec_line = " ".join(unit_word(w) for w in [*command, verb, config])
    out = []
    for line in shipped_unit(oneshot=oneshot).splitlines():
        # watch reloads with SIGHUP (ExecReload=/bin/kill ...), which is kept as shipped.
        if line.startswith(("ExecStart=", f"ExecReload={SHIPPED_COMMAND}")):
            key = line.split("=", 1)[0]
            line = f"{key}={exec_line}"
        elif line.startswith("ConditionPathExists="):
            line = f"ConditionPathExists={config.replace('%', '%%')}"
        elif line.startswith("Description="):
            line = line.replace(SHIPPED_CONFIG, config.replace("%", "%%"))
        out.append(line)
    return "\n".join(out) + "\n"


def netconsolectl_command() -> list[str]:
    """How the service should run netconsolectl: this console script, else ``python -m``."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "netconsolectl" and argv0.is_file():
        return [str(argv0.absolute())]
    found = shutil.which("netconsolectl")
    if found:
        return [str(Path(found).absolute())]
    return [sys.executable, "-m", "netconsolectl"]


# -- where things go --------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Paths of one system, under ``root`` (``/`` for this machine, a directory for an image)."""

    root: Path = Path("/")

    def under(self, path: str | Path) -> Path:
        p = Path(path)
        return self.root / p.relative_to("/") if p.is_absolute() else self.root / p

    @property
    def unit(self) -> Path:
        return self.unit_path(UNIT_NAME)

    def unit_path(self, name: str) -> Path:
        return self.under(SYSTEMD_UNIT_DIR) / name

    @property
    def modprobe_conf(self) -> Path:
        return self.under("/etc/modprobe.d/netconsolectl.conf")

    @property
    def modules_load(self) -> Path:
        return self.under("/etc/modules-load.d/netconsolectl.conf")

    @property
    def grub_default(self) -> Path:
        return self.under("/etc/default/grub")

    @property
    def grub_dropin(self) -> Path:
        return self.under("/etc/default/grub.d/netconsolectl.cfg")

    @property
    def lib_modules(self) -> Path:
        return self.under("/lib/modules")

    @property
    def is_host(self) -> bool:
        return os.fspath(self.root) == "/"  # as strings: any Path class (pyfakefs swaps them)


def netconsole_kind(layout: Layout, release: str | None) -> NetconsoleKind:
    """Whether netconsole is built into kernel ``release`` or a loadable module.

    modules.builtin lists what is compiled in; modules.dep what can be loaded
    (``kernel/drivers/net/netconsole.ko`` with any compression suffix).
    """
    if not release:
        return "unknown"
    d = layout.lib_modules / release
    try:
        builtin = (d / "modules.builtin").read_text()
    except OSError:
        builtin = None
    if builtin is not None and any(
        line.rsplit("/", 1)[-1] == "netconsole.ko" for line in builtin.splitlines()
    ):
        return "builtin"
    try:
        dep = (d / "modules.dep").read_text()
    except OSError:
        return "unknown" if builtin is None else "missing"
    for line in dep.splitlines():
        name = line.split(":", 1)[0].rsplit("/", 1)[-1]
        if name == "netconsole.ko" or name.startswith("netconsole.ko."):
            return "module"
    return "missing"


# -- steps ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One thing persist does: write a file, or run a command."""

    kind: Literal["write", "run"]
    path: Path | None = None
    content: str = ""
    argv: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "write":
            return f"write {self.path}"
        import shlex

        return "run " + shlex.join(self.argv)


def service_steps(layout: Layout, command: list[str], config: str, *, enable: bool,
                  oneshot: bool = False) -> list[Step]:
    name = unit_name(oneshot=oneshot)
    steps = [Step("write", layout.unit_path(name), render_unit(command, config,
                                                              oneshot=oneshot))]
    if layout.is_host:
        if Path(SYSTEMD_RUNNING).is_dir():  # systemd is the running init
            steps.append(Step("run", argv=("systemctl", "daemon-reload")))
        if enable:
            steps.append(Step("run", argv=("systemctl", "enable", name)))
    elif enable:
        steps.append(Step("run", argv=("systemctl", f"--root={layout.root}", "enable",
                                       name)))
    return steps


HEADER = "# Written by `netconsolectl persist --boot-param --write`.\n"


def boot_param_steps(layout: Layout, kind: NetconsoleKind,
                     value: str) -> tuple[list[Step], list[str]]:
    """Files that give the boot targets to the kernel, and what the admin must do next."""
    if any(c in value for c in ' \t\n"'):
        raise InvalidInput("the netconsole= value must not contain blanks or quotes")
    if kind == "module":
        steps = [
            Step("write", layout.modprobe_conf,
                 HEADER + "# netconsole is a module: its boot targets come from this option.\n"
                 f"options netconsole netconsole={value}\n"),
            Step("write", layout.modules_load,
                 HEADER + "# Load netconsole at boot so the targets above are created; they\n"
                 "# replay the kernel log from the start of the boot when they register.\n"
                 "netconsole\n"),
        ]
        todo = [
            "takes effect at the next boot (or `modprobe -r netconsole` and `modprobe "
            "netconsole` once no configfs target exists)",
            "if netconsole is in the initramfs, rebuild it (update-initramfs -u / dracut -f)",
        ]
        return steps, todo
    if kind == "builtin":
        if not layout.grub_default.exists():
            raise Unavailable(
                f"netconsole is built into the kernel, but {layout.grub_default} does not "
                "exist, so this is not a GRUB system netconsolectl can write for",
                hint=f"add netconsole={value} to the kernel command line yourself "
                "(systemd-boot: /etc/kernel/cmdline; grubby --update-kernel=ALL --args=...)",
            )
        word = f"netconsole={value}"
        if ";" in value:
            word = f'\\"{word}\\"'  # a ';' would end the `linux` command in grub.cfg
        steps = [Step("write", layout.grub_dropin,
                      HEADER + "# netconsole is built in: its boot targets come from the "
                      "kernel command line.\n"
                      f'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX {word}"\n')]
        return steps, ["run update-grub (or grub2-mkconfig -o /boot/grub2/grub.cfg) and reboot"]
    raise Unavailable(
        "cannot tell whether netconsole is built in or a module for this kernel"
        if kind == "unknown" else "this kernel has no netconsole (neither built in nor module)",
        hint="pass --kind module or --kind builtin",
    )


def run_command(argv: tuple[str, ...]) -> None:
    """Run a system command (systemctl); replaced by tests."""
    hostutil.run_command(argv, f"{' '.join(argv)} failed", missing_hint="is this a systemd system?")


def execute(steps: list[Step]) -> list[str]:
    """Carry the steps out; returns one line per step saying what happened."""
    done = []
    for step in steps:
        if step.kind == "write":
            assert step.path is not None
            try:
                changed = update_file(step.path, step.content)
            except OSError as e:
                raise from_oserror(e, f"cannot write {step.path}: {e.strerror}",
                                   otherwise=NetconsoleError, denied=WRITE_DENIED) from None
            done.append(f"wrote {step.path}" if changed else f"{step.path} is up to date")
        else:
            run_command(step.argv)
            done.append("ran " + " ".join(step.argv))
    return done
