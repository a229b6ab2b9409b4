"""CLI loglevel, test and doctor: is the kernel log actually leaving this machine?"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from netconsolectl.cli import complete
from netconsolectl.cli.base import Json, command, info, out, state, warn
from netconsolectl.errors import KernelRefused

if TYPE_CHECKING:
    from netconsolectl.cli.base import Invocation
    from netconsolectl.host.kmsgtest import TestMessage, Watch


@command("loglevel")
def loglevel_cmd(
    ctx: typer.Context,
    level: Annotated[int | None, typer.Argument(
        metavar="[N]", min=1, max=8, show_default=False,
        help="New console loglevel, 1-8: messages of a level below N reach netconsole.",
    )] = None,
    json_: Json = False,
) -> None:
    """Show the console loglevel, or set it (as `dmesg -n N` does; not kept across reboots).

    netconsole is a console: a message reaches it only when its level is below the console
    loglevel. Keep it across reboots with console_loglevel in the configuration file (applied
    by the service) or the loglevel= kernel parameter.
    """
    from netconsolectl.host import loglevel as ll

    st = state(ctx)
    before, current = ll.change(st.system, level)
    if level is not None and before != level:
        from netconsolectl.cli.output import changed

        changed()
    ignore = ll.ignore_loglevel(st.system)
    if json_:
        out(json.dumps(ll.report(st.system, current), indent=2))
    else:
        if level is not None and before != level:
            out(f"console loglevel {before} -> {current}: {ll.describe(current)}")
        else:
            out(f"console loglevel {current}: {ll.describe(current)}")
        if ignore:
            info("ignore_loglevel is set: every message reaches the consoles regardless")
    msg = None if ignore else st.system.loglevel_warning()
    if msg:
        warn(msg)


@command("test")
def test_cmd(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(
        metavar="[NAME]...", help="Targets that must receive it [every enabled one].",
        autocompletion=complete.target_names, show_default=False,
    )] = None,
    expect_listen: Annotated[str | None, typer.Option(
        "--expect-listen", metavar="URL|DIR|udp:[ADDR:]PORT",
        help="Confirm arrival: http://HOST:PORT of a `netconsolectl listen --metrics` "
        "(another machine), its --output-dir readable from here, or a UDP port on this "
        "machine where the packets arrive.",
    )] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", metavar="S", min=0.1, max=600.0,
        help="Seconds to wait for the message with --expect-listen.",
    )] = 5.0,
    level: Annotated[int | None, typer.Option(
        "--level", metavar="N", min=0, max=7,
        help="Message level 0-7 [the least severe one that passes the console loglevel; "
        "at most 4 with --expect-listen http://].",
    )] = None,
) -> None:
    """Write a unique marker line to /dev/kmsg and say which targets it was handed to.

    The kernel sends each message to every enabled target. Without --expect-listen, success
    means the kernel took the message and the targets were up; only the collector can tell
    whether the packets arrived (UDP has no reply), which --expect-listen checks: exit 0 when
    it arrived (with the time it took), 1 with the reason when it did not within --timeout.
    """
    from netconsolectl.host import kmsgtest
    from netconsolectl.sender.setup import read_live
    from netconsolectl.sender.target import require_netconsole

    st = state(ctx)
    require_netconsole(st.fs)
    watch = kmsgtest.parse_expect(expect_listen) if expect_listen else None
    level = kmsgtest.level_for(st.system, level, watch.max_level if watch else None)
    msg = kmsgtest.prepare(st.system, read_live(st.system), names or [], level)
    seen, took = _send_and_wait(st, msg, watch, timeout)
    grew = msg.transmit_growth(read_live(st.system))
    for n, d in grew:
        warn(f"{n}: transmit_errors grew by {d}: the driver dropped the packet")
    if watch is None:
        info("netconsole does not confirm delivery; check the collector for "
             f"{msg.marker!r}, or pass --expect-listen")
        if grew:
            raise typer.Exit(1)
        return
    if seen is None:
        why = f" (last answer: {watch.error})" if watch.error else ""
        raise KernelRefused(
            f"{msg.marker} did not arrive at {expect_listen} within {timeout:g} s{why}",
            hint="check remote_mac (the next hop's), the collector's port and firewall, "
            "and `netconsolectl doctor`",
        )
    out(f"arrived: {seen} after {took:.2f} s")


def _send_and_wait(st: Invocation, msg: TestMessage, watch: Watch | None, timeout: float
                   ) -> tuple[str | None, float]:
    """Write the test line, say where the kernel hands it, wait for ``watch`` to see it;
    (where it was seen or None, seconds since the write)."""
    import time

    from netconsolectl.host import kmsgtest
    from netconsolectl.host.loglevel import LEVEL_NAMES

    if watch is not None:
        watch.start()
    try:
        started = time.monotonic()
        kmsgtest.write_kmsg(st.system, msg.level, msg.text)
        cur = st.system.console_loglevel()
        out(f"wrote {msg.marker} to {st.system.kmsg_path} at level {msg.level} "
            f"({LEVEL_NAMES[msg.level]})"
            + (f", which passes the console loglevel {cur}" if cur is not None else ""))
        for s, how in msg.delivery.sent:
            out(f"sent to {s.name}: {how}")
        for s, reason in msg.delivery.skipped:
            out(f"not sent to {s.name}: {reason}")
        seen = watch.wait(msg.marker, timeout) if watch is not None else None
    finally:
        if watch is not None:
            watch.close()
    return seen, time.monotonic() - started


@command("doctor")
def doctor_cmd(ctx: typer.Context, json_: Json = False) -> None:
    """Check everything netconsole needs, one line per check with its verdict and fix.

    Host: root, configfs, the module, dynamic configuration, the console loglevel. Each
    target: enabled, release without extended, device exists/up/not a bond or bridge port/
    Ethernet, source address still on the device, route to the collector through the device,
    next-hop MAC still current. Exit status 0 when every check is ok or info, 1 when any
    warns or fails.
    """
    from netconsolectl.host import doctor
    from netconsolectl.sender.setup import read_live

    st = state(ctx)
    states = list(read_live(st.system).values()) if st.fs.available() else None
    checks = doctor.run(st.system, states)
    code = doctor.exit_code(checks)
    if json_:
        out(json.dumps({"ok": code == 0, "checks": [c.to_json() for c in checks]}, indent=2))
    else:
        for c in checks:
            out(c.line())
        bad = sum(c.verdict in ("warn", "fail") for c in checks)
        info("no problems found" if not bad else f"{bad} problem(s) found")
    if code:
        raise typer.Exit(code)
