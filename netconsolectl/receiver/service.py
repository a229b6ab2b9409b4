"""``listen --install-service``: the hardened systemd unit running ``listen --config FILE``.

The unit (``netconsolectl-listen.service``, shipped in the package) runs as a dynamic user with
only CAP_NET_BIND_SERVICE, a read-only system and its own state and log directories; see the
comments in the unit. Installing writes it to /etc/systemd/system with this installation's
command and configuration path, writes a starting configuration if there is none (never over an
existing one), and asks systemd to reload. Running it twice changes nothing the second time.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from netconsolectl.errors import WRITE_DENIED, InvalidInput, from_oserror
from netconsolectl.facts import DEFAULT_REMOTE_PORT, SYSTEMD_RUNNING, SYSTEMD_UNIT_DIR
from netconsolectl.host.persist import netconsolectl_command, unit_word
from netconsolectl.hostutil import run_command, update_file

UNIT_NAME = "netconsolectl-listen.service"
DEFAULT_CONFIG = "/etc/netconsolectl/listen.toml"
SHIPPED_EXEC = "/usr/bin/netconsolectl"
#: Where LogsDirectory= puts the per-host files.
LOG_DIR = "/var/log/netconsolectl-listen"

STARTER_CONFIG = f"""\
# Options of `netconsolectl listen` (the long option names without "--").
# Written by `netconsolectl listen --install-service`; edit, then
#   systemctl restart netconsolectl-listen
port = {DEFAULT_REMOTE_PORT}
quiet = true
output-dir = "{LOG_DIR}"
# silence = 300
# expect = "/etc/netconsolectl/hosts"
# metrics = "127.0.0.1:9469"
# forward = ["journald"]
# on-crash = ["/usr/local/bin/page-oncall"]
"""


def shipped_unit() -> str:
    return (resources.files("netconsolectl") / "data" / UNIT_NAME).read_text(encoding="utf-8")


def render_unit(cmd: list[str], config: str = DEFAULT_CONFIG) -> str:
    """The shipped unit with this installation's command and configuration path."""
    if not config.startswith("/"):
        raise InvalidInput(f"--config for the service must be an absolute path, not {config!r}")
    out = []
    for line in shipped_unit().splitlines():
        if line.startswith("ExecStart="):
            words = [*cmd, "listen", "--config", config]
            line = "ExecStart=" + " ".join(unit_word(w) for w in words)
        elif line.startswith("Description="):
            line = line.replace(DEFAULT_CONFIG, config.replace("%", "%%"))
        out.append(line)
    return "\n".join(out) + "\n"


def install(config: str = DEFAULT_CONFIG, *, root: str = "/", reload: bool = True
            ) -> list[str]:
    """Install the unit (and a starter configuration when there is none); returns what was
    done, one line each. ``root`` places everything under another tree (an image, tests).
    Raises PermissionDenied, KernelRefused, InvalidInput."""
    unit = render_unit(netconsolectl_command(), config)
    base = Path(root)
    unit_path = base / SYSTEMD_UNIT_DIR.lstrip("/") / UNIT_NAME
    config_path = base / config.lstrip("/")
    done = []
    try:
        if update_file(unit_path, unit):
            done.append(f"wrote {unit_path}")
        else:
            done.append(f"{unit_path} is up to date")
        if not config_path.exists():
            update_file(config_path, STARTER_CONFIG)
            done.append(f"wrote {config_path} (a starting configuration)")
        else:
            done.append(f"kept {config_path}")
    except OSError as e:
        where = e.filename or unit_path
        raise from_oserror(e, f"cannot write {where}: {e.strerror}",
                           denied=WRITE_DENIED) from None
    if reload and root == "/" and Path(SYSTEMD_RUNNING).is_dir():
        run_command(["systemctl", "daemon-reload"], "systemctl daemon-reload failed")
        done.append("systemctl daemon-reload")
    done.append(f"start it with: systemctl enable --now {UNIT_NAME}")
    return done
