"""Kernel crash reports (panic, oops, BUG, WARNING, lockups, stalls, hung tasks, OOM) as one event.

A report is many printk records: a first line that names the problem, then registers, a stack
trace, module lists, and often an end marker. :class:`CrashDetector` follows each source
(address and port) and gathers the lines of a report into one ``crash`` event.

Where the kernel prints the lines recognised here (6.12 sources):

===============  ==============================================================================
kind             first line (file, function)
===============  ==============================================================================
panic            ``Kernel panic - not syncing: %s`` and the closing
                 ``---[ end Kernel panic - not syncing: %s ]---`` (kernel/panic.c, ``panic``)
oops             ``Oops: %s ...`` (arch/x86/kernel/dumpstack.c, ``__die_header``), after
                 ``BUG: kernel NULL pointer dereference, address: %px`` or
                 ``BUG: unable to handle page fault for address: %px``
                 (arch/x86/mm/fault.c, ``show_fault_oops``) or ``kernel BUG at %s:%u!``
                 (lib/bug.c, ``report_bug``); closed by ``---[ end trace %016llx ]---``
                 (kernel/panic.c, ``print_oops_end_marker``)
bug              ``BUG: scheduling while atomic: %s/%d/0x%08x`` (kernel/sched/core.c,
                 ``__schedule_bug``), ``BUG: sleeping function called from invalid context at
                 %s:%d`` (kernel/sched/core.c, ``__might_resched``), ``BUG: KASAN: %s in %pS``
                 inside ``====`` rules (mm/kasan/report.c, ``print_error_description``,
                 ``start_report``/``end_report``)
warning          ``------------[ cut here ]------------`` (``CUT_HERE``, include/asm-generic/
                 bug.h) then ``WARNING: CPU: %d PID: %d at %pS`` (kernel/panic.c, ``__warn``),
                 closed by the end-trace marker
soft_lockup      ``watchdog: BUG: soft lockup - CPU#%d stuck for %us! [%s:%d]``
                 (kernel/watchdog.c, ``watchdog_timer_fn``; ``watchdog: `` is its pr_fmt)
hard_lockup      ``watchdog: Watchdog detected hard LOCKUP on cpu %u`` (kernel/watchdog.c,
                 ``watchdog_hardlockup_check``; before 6.5 ``NMI watchdog: ...`` in
                 kernel/watchdog_hld.c)
rcu_stall        ``rcu: INFO: %s detected stalls on CPUs/tasks:`` and
                 ``rcu: INFO: %s self-detected stall on CPU`` (kernel/rcu/tree_stall.h,
                 ``print_other_cpu_stall``/``print_cpu_stall``; ``rcu: `` is RCU's pr_fmt)
hung_task        ``INFO: task %s:%d blocked for more than %ld seconds.`` (kernel/hung_task.c,
                 ``check_hung_task``)
oom              ``%s invoked oom-killer: gfp_mask=...`` (mm/oom_kill.c, ``dump_header``) up
                 to ``Out of memory: Killed process %d (%s) ...`` or ``Memory cgroup out of
                 memory: Killed process ...`` (mm/oom_kill.c, ``__oom_kill_process``)
===============  ==============================================================================

Only the end-trace/end-panic markers and the OOM killer's "Killed process" line close a report
explicitly; the others (lockups, stalls, hung tasks) end after their stack trace (`` </TASK>``)
or after :data:`QUIET` seconds without a line from the source. A panic on a machine set to
reboot (``panic=N``, as virtme-ng and many fleets boot) never sends its end marker: panic()
reboots before printing it. Such a report counts as complete when its stack trace ended.

What belongs to an open report: with ``CONFIG_PRINTK_CALLER`` the extended header carries
``caller=T<pid>`` or ``caller=C<cpu>``, and a line of another caller is someone else's. Without
it (Debian's kernels), a line that has the shape of an ordinary subsystem message
(``e1000e: eth0 NIC Link is Up``, ``audit: ...``) or the debug level is left out, while register
dumps, traces and the lines of the report's own prefix (``rcu:``, ``watchdog:``) stay in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netconsolectl.receiver.model import Event, Message
from netconsolectl.receiver.sources import Source

#: Seconds without a line from the source after which an open report is emitted.
QUIET = 5.0
#: Lines kept per report; a report going on for longer is cut (and marked incomplete).
MAX_LINES = 2000
#: Open reports at once (over all sources); the oldest is emitted early when more start.
MAX_OPEN = 4096

KINDS = (
    "panic", "oops", "bug", "warning", "soft_lockup", "hard_lockup", "rcu_stall", "hung_task",
    "oom",
)  # fmt: skip

@dataclass(frozen=True, slots=True)
class Opener:
    """A first line of a report: ``pattern`` matched at the start of the text (after a printk
    timestamp), the characters such a line can start with, its kind, and whether the next line
    names the problem (``provisional``)."""

    name: str
    pattern: str
    first: str
    kind: str
    provisional: bool = False


#: Every line that opens a report, tried in this order. This table is the one definition: the
#: detector's regular expression, and the fast paths' early no (the C loop gets it at start-up,
#: :meth:`OpenerTable.for_fast_path`) are derived from it.
OPENERS: tuple[Opener, ...] = (
    Opener("panic", r"Kernel panic - not syncing", "K", "panic"),
    Opener("cut", r"-+\[ cut here \]-+", "-", "warning", provisional=True),
    Opener("kasan_rule", r"={40,}", "=", "bug", provisional=True),
    Opener("soft", r"(?:watchdog: )?BUG: soft lockup", "wB", "soft_lockup"),
    Opener("hard", r"(?:(?:NMI )?watchdog: )?Watchdog detected hard LOCKUP", "NwW", "hard_lockup"),
    Opener(
        "rcu", r"(?:rcu: )?INFO: \S+ (?:detected (?:expedited )?stalls|self-detected stall)", "rI",
        "rcu_stall",
    ),
    Opener("hung", r"INFO: task \S.* blocked for more than", "I", "hung_task"),
    # On x86 both always go on to an "Oops:" line (page_fault_oops and handle_bug call die()),
    # so they name an oops even when that line is lost.
    Opener("oopsbug", r"BUG: (?:kernel NULL pointer dereference|unable to handle)", "B", "oops"),
    Opener("kbug", r"kernel BUG at ", "k", "oops"),
    Opener("bug", r"BUG: ", "B", "bug"),
    Opener("oops", r"Oops: ", "O", "oops"),
    Opener("warning", r"WARNING: CPU: ", "W", "warning"),
)
#: Lines that open a report wherever the text is found in them, at any level: the OOM
#: killer's first line is ``%s invoked oom-killer: ...`` after the task's name.
ANYWHERE: tuple[tuple[str, str], ...] = ((" invoked oom-killer: ", "oom"),)
#: Least severe printk level whose lines may open a report (KERN_WARNING); ``ANYWHERE`` lines
#: open one at any level.
MAX_LEVEL = 4
#: The printk timestamp of the basic (non-extended) format, ``[   12.345678] ``, with the
#: caller id of CONFIG_PRINTK_CALLER (``[    T1]``) when there is one: what follows it is the
#: line as the extended format sends it.
STAMP = re.compile(r"\[ *\d+\.\d+\](?:\[ *[TC]\d+\])? ?")


@dataclass(frozen=True, slots=True)
class OpenerTable:
    """The compiled form of :data:`OPENERS`, :data:`ANYWHERE` and :data:`MAX_LEVEL`."""

    openers: tuple[Opener, ...] = OPENERS
    anywhere: tuple[tuple[str, str], ...] = ANYWHERE
    max_level: int = MAX_LEVEL
    regex: re.Pattern[str] = field(init=False)
    #: First characters of every line that may open a report; ``[`` for a printk timestamp.
    first: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        regex = re.compile("|".join(f"(?P<{o.name}>{o.pattern})" for o in self.openers))
        object.__setattr__(self, "regex", regex)
        object.__setattr__(self, "first", frozenset("".join(o.first for o in self.openers) + "["))

    def classify(self, text: str) -> tuple[str, bool] | None:
        """(kind, provisional) when ``text`` (without a printk timestamp) opens a report."""
        m = self.regex.match(text)
        if m is None:
            for needle, kind in self.anywhere:
                if needle in text:
                    return kind, False
            return None
        return next((o.kind, o.provisional) for o in self.openers if o.name == m.lastgroup)

    def may_open(self, level: int | None, text: str) -> bool:
        """A cheap test that is true for every line :meth:`classify` may accept."""
        if any(needle in text for needle, _ in self.anywhere):
            return True
        return bool(text) and (level is None or level <= self.max_level) and text[0] in self.first

    def for_fast_path(self) -> tuple[bytes, tuple[bytes, ...], int]:
        """The table the fast paths (the C loop, the Python loop) test a message against:
        (256 bytes, 1 where a first byte may open a report; the ANYWHERE needles; MAX_LEVEL).
        A message they cannot rule out this way goes to the detector."""
        first = bytes(1 if chr(c) in self.first else 0 for c in range(256))
        return first, tuple(n.encode() for n, _ in self.anywhere), self.max_level


DEFAULT_TABLE = OpenerTable()


def strip_stamp(text: str) -> str:
    """The line without a leading printk timestamp (basic format)."""
    if text.startswith("["):
        m = STAMP.match(text)
        if m is not None:
            return text[m.end() :]
    return text


_OOM_END = re.compile(
    r"(?:Out of memory|Memory cgroup out of memory)(?: \([^)]*\))?: Killed process"
)
_END_MARK = re.compile(r"---\[ end (?:trace|Kernel panic)")
#: A line shaped like an ordinary subsystem message: up to three words (``e1000e 0000:00:03.0
#: eth0: ``, ``systemd[1]: ``), a colon, a space.
_FOREIGN = re.compile(r"[A-Za-z_][\w.-]*(?:\[\d+\])?(?: [\w.:-]+){0,2}: ")
#: Report lines that have that shape all the same: registers, machine, trace and OOM lines.
_OWN = re.compile(
    r"(?:[A-Z0-9]{2,4}|CPU|Hardware name|Kernel Offset|Workqueue|Code|Comm|Tainted|Call Trace"
    r"|memory|swap|kmem|Mem-Info|Hardware|Modules linked in|Stack|Sending NMI|NMI backtrace"
    r"|task|Node \d+|CR2|RIP|PKRU|Free swap|Total swap|Unreclaimable slab info|Name|oom-kill"
    r"|Oops|Memory cgroup|Out of memory|panic|Shutting down cpus with NMI|Rebooting in"
    r"|Dumping ftrace buffer|sysrq|irq event stamp|hardirqs last\s+\w+ at|softirqs last\s+\w+"
    r" at|Showing all locks held in the system|Read of size|Write of size|The buggy address"
    r"|Memory state around the buggy address|Allocated by task|Freed by task|Last potentially"
    r" related work creation|Second to last potentially related work creation|page|flags"
    r"|raw|page dumped because|in_atomic\(\)|preempt_count|RCU nest depth|Preemption disabled at"
    r"|INFO|Faulting instruction|#PF): "
)
_RULE = "=" * 40
_TASK_END = " </TASK>"


@dataclass(slots=True)
class _Report:
    source: Source
    kind: str
    title: str
    received: float
    last: float
    lines: list[str] = field(default_factory=list)
    first_seq: int | None = None
    last_seq: int | None = None
    caller: str | None = None
    prefix: str | None = None
    #: Something of the report went missing (lost messages, a fragment never arrived).
    damaged: bool = False
    #: The opening line was a rule or "cut here"; the next line names the problem.
    provisional: bool = False
    #: The KASAN report's opening rule; its second one closes it.
    kasan: bool = False
    #: A stack trace of the report ended (`` </TASK>``).
    trace_done: bool = False
    fields: dict[str, str] = field(default_factory=dict)


#: Kinds whose report is one stack trace: it ends with the trace.
_TASK_ENDED = frozenset(("hung_task", "soft_lockup", "hard_lockup"))
_ENDLESS = frozenset(("soft_lockup", "hard_lockup", "rcu_stall", "hung_task"))


def classify(text: str) -> tuple[str, bool] | None:
    """(kind, provisional) when ``text`` opens a crash report, else None."""
    return DEFAULT_TABLE.classify(strip_stamp(text))


class CrashDetector:
    """Follows every source; ``emit`` gets one ``crash`` :class:`Event` per report.

    ``message`` must see every message of a source in order of arrival, ``lost`` every gap
    and ``tick`` the clock a few times a second. ``active`` tells whether a source has an open
    report (the fast path hands such sources to the general path).
    """

    def __init__(
        self,
        emit: Callable[[Event], None],
        *,
        quiet: float = QUIET,
        settle: float = 0.0,
        table: OpenerTable = DEFAULT_TABLE,
    ) -> None:
        self.emit = emit
        self.quiet = quiet
        #: A finished report waits this long (the receiver's reorder window) before it is
        #: emitted, so a gap inside it that turns into a ``lost`` event still marks it.
        self.settle = settle
        #: The lines that open a report (the fast paths take theirs from here too).
        self.table = table
        self.open: dict[Source, _Report] = {}
        self.closing: list[tuple[float, _Report, bool]] = []
        self.reports = 0

    @property
    def active(self) -> dict[Source, Any]:
        return self.open

    def message(self, m: Message) -> None:
        src = (m.host, m.port)
        rep = self.open.get(src)
        # The basic format prefixes the printk timestamp; the report's logic reads the line
        # after it, as the extended format sends it.
        text = strip_stamp(m.text)
        if rep is None:
            if self.table.may_open(m.level, text):
                found = self.table.classify(text)
                if found is not None:
                    self._start(src, m, text, *found)
            return
        if m.incomplete:
            rep.damaged = True
        caller = m.fields.get("caller") if m.fields else None
        if caller is not None and rep.caller is not None and caller != rep.caller:
            return  # another CPU or task printing in the middle of the report
        found = self.table.classify(text) if text else None
        if self._restarts(src, rep, m, text, found):
            return
        if found is None and caller is None and self._foreign(rep, m, text):
            return
        self._add(rep, m)
        self._update(rep, text, found)
        if self._closes(rep, text):
            self._finish(src, complete=True)

    def _restarts(
        self, src: Source, rep: _Report, m: Message, text: str, found: tuple[str, bool] | None
    ) -> bool:
        """The line ends the open report (or shows it was none) and opens another, or none."""
        if rep.kasan and rep.provisional and (found is None or found[0] != "bug"):
            # a rule line that did not open a KASAN report: nothing to report
            del self.open[src]
            if found is not None:
                self._start(src, m, text, *found)
            return True
        if found is not None and not self._continues(rep, found[0], text):
            self._finish(src, complete=self._natural_end(rep))
            self._start(src, m, text, *found)
            return True
        return False

    @staticmethod
    def _update(rep: _Report, text: str, found: tuple[str, bool] | None) -> None:
        """What a line added to the report says about its kind, title and end."""
        if rep.provisional and found is not None and not found[1]:
            # the line after "cut here" (or after a WARN()'s own text) names the problem
            rep.provisional = False
            rep.kind = found[0]
            rep.title = text
        if text.startswith("Oops: ") and rep.kind == "bug":
            rep.kind = "oops"
        if rep.kind == "oom" and _OOM_END.match(text):
            rep.title = text
        if text == _TASK_END:
            rep.trace_done = True

    @staticmethod
    def _closes(rep: _Report, text: str) -> bool:
        """The line is the report's last."""
        if _END_MARK.match(text):
            return True
        if rep.kind == "oom":
            return _OOM_END.match(text) is not None
        if rep.kasan:
            return text.startswith(_RULE) and len(rep.lines) > 2
        return text == _TASK_END and rep.kind in _TASK_ENDED

    def _continues(self, rep: _Report, kind: str, text: str) -> bool:
        """A line that opens a report but belongs to the open one."""
        if rep.provisional:
            return True  # "cut here" is followed by WARNING: or kernel BUG at
        if text.startswith("Oops: ") and rep.kind in ("bug", "oops"):
            return True
        if rep.kind == "oom":
            return False
        return bool(rep.kasan and text.startswith(_RULE))

    def _foreign(self, rep: _Report, m: Message, text: str) -> bool:
        if m.level == 7:
            return True
        if rep.provisional and not rep.kasan:
            return False  # WARN()'s own message comes between "cut here" and "WARNING:"
        if not text or text[0] in " \t" or _OWN.match(text):
            return False
        if rep.prefix is not None and text.startswith(rep.prefix):
            return False
        return _FOREIGN.match(text) is not None

    @staticmethod
    def _natural_end(rep: _Report) -> bool:
        # A panic with panic=N (reboot after N seconds; -1 at once) never prints its end
        # marker: kernel/panic.c prints "---[ end Kernel panic" only when it does not reboot.
        # Its trace printed and the source gone quiet is all there is.
        return rep.kind in _ENDLESS or (rep.kind == "panic" and rep.trace_done)

    def _start(self, src: Source, m: Message, text: str, kind: str, provisional: bool) -> None:
        if len(self.open) >= MAX_OPEN:
            oldest = min(self.open.values(), key=lambda r: r.last)
            self._finish(oldest.source, complete=False)
        colon = text.find(": ")
        prefix = text[: colon + 2] if 0 < colon < 12 and " " not in text[:colon] else None
        rep = _Report(
            src, kind, text, m.received, m.received,
            caller=m.fields.get("caller") if m.fields else None,
            prefix=prefix, provisional=provisional,
            kasan=provisional and kind == "bug", fields=dict(m.fields) if m.fields else {},
        )  # fmt: skip
        self.open[src] = rep
        self._add(rep, m)
        if m.incomplete:
            rep.damaged = True

    def _add(self, rep: _Report, m: Message) -> None:
        if len(rep.lines) >= MAX_LINES:
            rep.damaged = True
            return
        if m.cont and rep.lines:
            rep.lines[-1] += m.text
        else:
            rep.lines.append(m.text)
        if m.seq is not None:
            if rep.first_seq is None:
                rep.first_seq = m.seq
            rep.last_seq = m.seq
        rep.last = m.received

    def lost(self, src: Source) -> None:
        """Messages of ``src`` went missing: an open (or just finished) report of it is no
        longer whole."""
        rep = self.open.get(src)
        if rep is not None:
            rep.damaged = True
        for _, r, _ in self.closing:
            if r.source == src:
                r.damaged = True

    def _finish(self, src: Source, *, complete: bool) -> None:
        rep = self.open.pop(src, None)
        if rep is None:
            return
        if self.settle > 0:
            self.closing.append((rep.last + self.settle, rep, complete))
        else:
            self._emit(rep, complete)

    def _emit(self, rep: _Report, complete: bool) -> None:
        src = rep.source
        self.reports += 1
        data: dict[str, Any] = {
            "kind": rep.kind,
            "title": rep.title,
            "first_seq": rep.first_seq,
            "last_seq": rep.last_seq,
            "complete": complete and not rep.damaged,
            "text": "\n".join(rep.lines),
        }
        name = rep.fields.get("hostname")
        if name is not None:
            data["name"] = name
        self.emit(Event("crash", src[0], src[1], rep.received, data))

    def tick(self, now: float) -> None:
        """Emit reports whose source has been quiet for :attr:`quiet` seconds, and finished
        reports whose settling time is over."""
        if self.open:
            for src, rep in list(self.open.items()):
                if now - rep.last >= self.quiet:
                    self._finish(src, complete=self._natural_end(rep))
        if self.closing:
            due = [c for c in self.closing if c[0] <= now]
            if due:
                self.closing = [c for c in self.closing if c[0] > now]
                for _, rep, complete in due:
                    self._emit(rep, complete)

    def flush(self) -> None:
        """Emit every report, open or settling (shutdown)."""
        for src, rep in list(self.open.items()):
            self._finish(src, complete=self._natural_end(rep))
        closing, self.closing = self.closing, []
        for _, rep, complete in closing:
            self._emit(rep, complete)
