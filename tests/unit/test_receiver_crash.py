"""Crash reports as one event: every kind, interleaved, lost middle, truncated, continuation.

The reports below are built from the kernel's format strings (the table in
netconsolectl/receiver/crash.py names the file and function printing each first line); the
real-kernel captures (tests/data/crashes-6.12.jsonl) are replayed in
test_receiver_captured.py.
"""
# ruff: noqa: E501  (kernel lines are as long as the kernel prints them)

from __future__ import annotations

from typing import Any

import pytest

from netconsolectl.receiver.crash import CrashDetector, classify
from netconsolectl.receiver.model import Event, Message

HOST = ("192.0.2.7", 6665)

PANIC = """\
sysrq: Trigger a crash
Kernel panic - not syncing: sysrq triggered crash
CPU: 0 UID: 0 PID: 1 Comm: sh Not tainted 6.12.57+deb13-amd64 #1  Debian 6.12.57-1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
Call Trace:
 <TASK>
 dump_stack_lvl+0x5d/0x80
 panic+0x118/0x2ed
 sysrq_handle_crash+0x1a/0x20
 </TASK>
Kernel Offset: 0x2a000000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)
---[ end Kernel panic - not syncing: sysrq triggered crash ]---"""

NULL_OOPS = """\
BUG: kernel NULL pointer dereference, address: 0000000000000000
#PF: supervisor write access in kernel mode
#PF: error_code(0x0002) - not-present page
PGD 0 P4D 0
Oops: Oops: 0002 [#1] PREEMPT SMP NOPTI
CPU: 1 UID: 0 PID: 412 Comm: insmod Tainted: G           OE      6.12.57+deb13-amd64 #1
RIP: 0010:crash_init+0x15/0xff0 [crashme]
Code: Unable to access opcode bytes at 0xffffffffc0a01feb.
RSP: 0018:ffffb1b8c05bfc88 EFLAGS: 00010246
RAX: 0000000000000000 RBX: 0000000000000000 RCX: 0000000000000000
Call Trace:
 <TASK>
 do_one_initcall+0x5b/0x320
 </TASK>
Modules linked in: crashme(OE+) netconsole
CR2: 0000000000000000
---[ end trace 0000000000000000 ]---"""

KERNEL_BUG = """\
------------[ cut here ]------------
kernel BUG at mm/slub.c:542!
Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
CPU: 0 UID: 0 PID: 77 Comm: kworker/0:2 Not tainted 6.12.57+deb13-amd64 #1
RIP: 0010:__slab_free+0x2d6/0x2e0
Call Trace:
 <TASK>
 kfree+0x2d1/0x2f0
 </TASK>
---[ end trace 0000000000000000 ]---"""

WARNING = """\
------------[ cut here ]------------
WARNING: CPU: 1 PID: 230 at net/core/dev.c:11236 unregister_netdevice_many_notify+0x7c3/0x8c0
Modules linked in: netconsole
CPU: 1 UID: 0 PID: 230 Comm: ip Not tainted 6.12.57+deb13-amd64 #1
RIP: 0010:unregister_netdevice_many_notify+0x7c3/0x8c0
Call Trace:
 <TASK>
 rtnl_dellink+0x1a6/0x3a0
 </TASK>
---[ end trace 0000000000000000 ]---"""

WARN_WITH_TEXT = """\
------------[ cut here ]------------
netconsole: refcount underflow on eth0
WARNING: CPU: 0 PID: 1 at lib/refcount.c:28 refcount_warn_saturate+0xba/0x110
Call Trace:
 <TASK>
 </TASK>
---[ end trace 0000000000000000 ]---"""

SCHED_ATOMIC = """\
BUG: scheduling while atomic: swapper/0/0/0x00000002
Modules linked in: netconsole
CPU: 0 UID: 0 PID: 0 Comm: swapper/0 Not tainted 6.12.57+deb13-amd64 #1
Call Trace:
 <TASK>
 __schedule_bug+0x5b/0x80
 </TASK>
---[ end trace 0000000000000000 ]---"""

KASAN = """\
==================================================================
BUG: KASAN: slab-use-after-free in netpoll_send_udp+0x5e/0x4a0
Read of size 8 at addr ffff888104a2b0c8 by task kworker/1:1/61
CPU: 1 UID: 0 PID: 61 Comm: kworker/1:1 Not tainted 6.12.57 #1
Call Trace:
 <TASK>
 kasan_report+0xb9/0xf0
 </TASK>
Allocated by task 1:
 kmalloc_trace+0x25/0x60
The buggy address belongs to the object at ffff888104a2b000
=================================================================="""

SOFT_LOCKUP = """\
watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [spin:311]
Modules linked in: netconsole
CPU: 1 UID: 0 PID: 311 Comm: spin Tainted: G             L     6.12.57+deb13-amd64 #1
RIP: 0010:spin_loop+0x5/0x10 [spin]
Call Trace:
 <IRQ>
 </IRQ>
 <TASK>
 spin_init+0x9/0x20 [spin]
 </TASK>"""

HARD_LOCKUP = """\
watchdog: Watchdog detected hard LOCKUP on cpu 2
Modules linked in: netconsole
CPU: 2 UID: 0 PID: 0 Comm: swapper/2 Not tainted 6.12.57+deb13-amd64 #1
RIP: 0010:native_queued_spin_lock_slowpath+0x6b/0x2e0
Call Trace:
 <NMI>
 </NMI>
 <TASK>
 _raw_spin_lock+0x29/0x30
 </TASK>"""

RCU_STALL = """\
rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:
rcu: \t1-...!: (0 ticks this GP) idle=b2c4/1/0x4000000000000000 softirq=2151/2151 fqs=0
rcu: \t(detected by 0, t=21002 jiffies, g=3401, q=197 ncpus=2)
Sending NMI from CPU 0 to CPUs 1:
NMI backtrace for cpu 1
CPU: 1 UID: 0 PID: 0 Comm: swapper/1 Not tainted 6.12.57+deb13-amd64 #1
Call Trace:
 <NMI>
 </NMI>
rcu: rcu_preempt kthread timer wakeup didn't happen for 21001 jiffies! g3401 f0x0"""

HUNG = """\
INFO: task sync:318 blocked for more than 20 seconds.
      Not tainted 6.12.57+deb13-amd64 #1 Debian 6.12.57-1
"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
task:sync            state:D stack:0     pid:318   tgid:318   ppid:1      flags:0x00004002
Call Trace:
 <TASK>
 __schedule+0x3f5/0xb40
 sync_filesystem+0x2e/0xa0
 </TASK>"""

OOM = """\
python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
CPU: 0 UID: 0 PID: 345 Comm: python3 Not tainted 6.12.57+deb13-amd64 #1
Call Trace:
 <TASK>
 dump_stack_lvl+0x5d/0x80
 </TASK>
memory: usage 16384kB, limit 16384kB, failcnt 27
swap: usage 0kB, limit 9007199254740988kB, failcnt 0
Memory cgroup stats for /oomtest:
anon 16203776
Tasks state (memory values in pages):
[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name
[    345]     0   345    10592     4407     3958      449         0    90112        0             0 python3
oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/oomtest,task_memcg=/oomtest,task=python3,pid=345,uid=0
Memory cgroup out of memory: Killed process 345 (python3) total-vm:42368kB, anon-rss:15832kB, file-rss:1796kB, shmem-rss:0kB, UID:0 pgtables:88kB oom_score_adj:0"""

CASES = [
    ("panic", PANIC, "Kernel panic - not syncing: sysrq triggered crash", True, 1),
    ("oops", NULL_OOPS, "BUG: kernel NULL pointer dereference, address: 0000000000000000",
     True, 0),
    ("oops", KERNEL_BUG, "kernel BUG at mm/slub.c:542!", True, 0),
    ("warning", WARNING, WARNING.splitlines()[1], True, 0),
    ("warning", WARN_WITH_TEXT, WARN_WITH_TEXT.splitlines()[2], True, 0),
    ("bug", SCHED_ATOMIC, SCHED_ATOMIC.splitlines()[0], True, 0),
    ("bug", KASAN, KASAN.splitlines()[1], True, 0),
    ("soft_lockup", SOFT_LOCKUP, SOFT_LOCKUP.splitlines()[0], True, 0),
    ("hard_lockup", HARD_LOCKUP, HARD_LOCKUP.splitlines()[0], True, 0),
    ("rcu_stall", RCU_STALL, RCU_STALL.splitlines()[0], True, 0),
    ("hung_task", HUNG, HUNG.splitlines()[0], True, 0),
    ("oom", OOM, OOM.splitlines()[-1], True, 0),
]

# the level each line is printed at, roughly: the first line at its own, the rest KERN_DEFAULT
LEVEL = {"panic": 0, "oops": 1, "bug": 3, "warning": 4, "soft_lockup": 0, "hard_lockup": 0,
         "rcu_stall": 3, "hung_task": 3, "oom": 4}


class Feed:
    def __init__(self, quiet: float = 5.0) -> None:
        self.events: list[Event] = []
        self.det = CrashDetector(self.events.append, quiet=quiet)
        self.seq = 100
        self.t = 1000.0

    def line(self, text: str, *, level: int | None = 4, src: tuple[str, int] = HOST,
             fields: dict[str, str] | None = None, cont: bool = False,
             incomplete: bool = False, basic: bool = False) -> None:
        self.seq += 1
        self.t += 0.001
        if basic:
            m = Message(src[0], src[1], self.t, text)
        else:
            m = Message(src[0], src[1], self.t, text, None, 0, level, self.seq, 1, cont,
                        fields or {}, incomplete)
        self.det.message(m)

    def report(self, text: str, first_level: int, **kw: Any) -> None:
        for i, line in enumerate(text.splitlines()):
            self.line(line, level=first_level if i == 0 else 4, **kw)

    @property
    def crashes(self) -> list[dict[str, Any]]:
        return [{"host": e.host, **e.data} for e in self.events if e.type == "crash"]


def strip_preamble(kind: str, text: str) -> str:
    return "\n".join(text.splitlines()[1:]) if kind == "panic" else text


@pytest.mark.parametrize(("kind", "text", "title", "complete", "skip"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_kind_is_one_event(kind: str, text: str, title: str, complete: bool,
                                skip: int) -> None:
    f = Feed()
    f.line("e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex", level=6)
    f.report(text, LEVEL[kind])
    f.line("systemd[1]: Started something.", level=6)
    f.det.tick(f.t + 10)
    assert len(f.crashes) == 1, f.crashes
    c = f.crashes[0]
    assert c["kind"] == kind
    assert c["title"] == title
    assert c["complete"] is complete
    assert c["text"] == "\n".join(text.splitlines()[skip:])
    assert c["first_seq"] is not None and c["last_seq"] - c["first_seq"] == len(
        text.splitlines()[skip:]) - 1


def test_basic_format_has_no_seq_and_still_works() -> None:
    f = Feed()
    for line in NULL_OOPS.splitlines():
        f.line(line, basic=True)
    (c,) = f.crashes
    assert c["kind"] == "oops" and c["first_seq"] is None and c["last_seq"] is None
    assert c["complete"] is True


def test_other_sources_are_separate() -> None:
    f = Feed()
    other = ("192.0.2.8", 6665)
    lines = PANIC.splitlines()[1:]
    warn = WARNING.splitlines()
    for i in range(max(len(lines), len(warn))):
        if i < len(lines):
            f.line(lines[i], level=0)
        if i < len(warn):
            f.line(warn[i], src=other)
    kinds = sorted((c["host"], c["kind"]) for c in f.crashes)
    assert kinds == [("192.0.2.7", "panic"), ("192.0.2.8", "warning")]
    assert all(c["complete"] for c in f.crashes)


def test_interleaved_lines_of_other_callers_stay_out() -> None:
    f = Feed()
    for i, line in enumerate(HUNG.splitlines()):
        f.line(line, level=3, fields={"caller": "T45"})
        if i == 2:
            f.line("some other task printing a long message in between", level=6,
                   fields={"caller": "T999"})
    (c,) = f.crashes
    assert "some other task" not in c["text"]
    assert c["text"] == HUNG


def test_interleaved_subsystem_lines_stay_out_without_caller() -> None:
    f = Feed()
    for i, line in enumerate(WARNING.splitlines()):
        f.line(line)
        if i == 3:
            f.line("e1000e 0000:00:03.0 eth0: NIC Link is Down", level=6)
            f.line("audit: type=1400 audit(1700000000.123:45): apparmor=\"DENIED\"", level=5)
            f.line("debugging noise", level=7)
    (c,) = f.crashes
    assert c["text"] == WARNING


def test_lost_middle_is_incomplete() -> None:
    f = Feed()
    lines = NULL_OOPS.splitlines()
    for line in lines[:4]:
        f.line(line)
    f.det.lost(HOST)
    for line in lines[8:]:
        f.line(line)
    (c,) = f.crashes
    assert c["kind"] == "oops" and c["complete"] is False


def test_truncated_report_ends_after_quiet_interval() -> None:
    f = Feed(quiet=2.0)
    for line in PANIC.splitlines()[1:6]:
        f.line(line, level=0)
    f.det.tick(f.t + 1.0)
    assert f.crashes == []
    f.det.tick(f.t + 2.5)
    (c,) = f.crashes
    assert c["kind"] == "panic" and c["complete"] is False
    assert c["text"] == "\n".join(PANIC.splitlines()[1:6])


def test_continuation_records_join_their_line() -> None:
    f = Feed()
    lines = WARNING.splitlines()
    f.line(lines[0])
    f.line(lines[1])
    f.line("Modules linked in:")
    f.line(" netconsole", cont=True)
    f.line(" e1000", cont=True)
    for line in lines[3:]:
        f.line(line)
    (c,) = f.crashes
    assert "Modules linked in: netconsole e1000\n" in c["text"]


def test_incomplete_message_marks_the_report() -> None:
    f = Feed()
    lines = WARNING.splitlines()
    for i, line in enumerate(lines):
        f.line(line, incomplete=i == 3)
    (c,) = f.crashes
    assert c["complete"] is False


def test_oops_then_panic_are_two_events() -> None:
    f = Feed()
    f.report(NULL_OOPS, 1)
    f.report("Kernel panic - not syncing: Fatal exception\n"
             "Kernel Offset: disabled\n"
             "---[ end Kernel panic - not syncing: Fatal exception ]---", 0)
    assert [c["kind"] for c in f.crashes] == ["oops", "panic"]


def test_a_new_report_closes_an_open_one() -> None:
    f = Feed()
    f.report(HUNG.replace(" </TASK>", " __x+0x1/0x2"), 3)  # its end not (yet) seen
    f.report(HUNG, 3)
    assert [c["kind"] for c in f.crashes] == ["hung_task", "hung_task"]
    assert f.crashes[0]["complete"] is True  # hung-task reports have no end marker


def test_rule_line_alone_is_not_a_report() -> None:
    f = Feed()
    f.line("=" * 66)
    f.line("some table below a rule", level=6)
    f.det.tick(f.t + 10)
    assert f.crashes == []


def test_hostname_userdata_names_the_sender() -> None:
    f = Feed()
    f.report(WARNING, 4, fields={"hostname": "web1"})
    assert f.crashes[0]["name"] == "web1"


@pytest.mark.parametrize("text", [
    "Kernel panic - not syncing: VFS: Unable to mount root fs",
    "Oops: general protection fault, probably for non-canonical address 0xdead: 0000 [#1]",
    "BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580",
    "NMI watchdog: Watchdog detected hard LOCKUP on cpu 0",
    "INFO: rcu_sched self-detected stall on CPU",
    "kworker/u4:1 invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE), order=0",
])
def test_classify_recognises(text: str) -> None:
    assert classify(text) is not None


@pytest.mark.parametrize("text", [
    "netconsole: network logging started",
    "INFO: lockdep is turned off.",
    "usb 1-1: new high-speed USB device number 2 using xhci_hcd",
    "Out of memory: Killed process 1 (init)",  # only ends an OOM report
])
def test_classify_rejects(text: str) -> None:
    assert classify(text) is None


@pytest.mark.parametrize("kind", ["panic", "oops", "bug", "warning", "hung_task"])
def test_basic_format_with_printk_timestamps(kind: str) -> None:
    """The default console format puts the printk timestamp in front of every line (and the
    caller id with CONFIG_PRINTK_CALLER): the report is recognised behind it, in the basic and
    the extended format, and its title is the line without the timestamp."""
    text, title = next((c[1], c[2]) for c in CASES if c[0] == kind)
    for basic in (True, False):
        f = Feed()
        for i, line in enumerate(text.splitlines()):
            stamp = f"[{100 + i * 0.001:12.6f}]" + ("[    T1] " if i % 2 else " ")
            f.line(stamp + line, level=LEVEL[kind] if i == 0 else 4, basic=basic)
        f.det.tick(f.t + 10)
        assert [c["kind"] for c in f.crashes] == [kind], (basic, f.crashes)
        assert f.crashes[0]["title"] == title


def test_classify_sees_past_the_timestamp() -> None:
    assert classify("[   12.345678] Kernel panic - not syncing: VFS") == ("panic", False)
    assert classify("[ 5.000001][    C0] BUG: scheduling while atomic") == ("bug", False)
    assert classify("[   12.345678] usb 1-1: new device") is None
