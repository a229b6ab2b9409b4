"""Two receivers behind one address: two separately started ``listen --reuseport`` processes
share one UDP port (SO_REUSEPORT across processes) and forward over RELP into one real rsyslogd.
Each sender (source address and port, one kernel target) lands on one receiver while the group
is unchanged, and across a restart of either receiver every message reaches rsyslogd exactly
once. Loopback only: 16 senders from 127.0.0.1 to 127.0.0.16."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from tests.listen.conftest import Listener, Sender, free_port
from tests.listen.test_fleet import ext
from tests.listen.test_forward import Rsyslog
from tests.listen.test_relp import counters, relp_rsyslog  # noqa: F401 (fixture)

SENDERS = 16
PER_PHASE = 40
TEXT = re.compile(r"s(\d+) m(\d+)$")


def start(tmp: Path, name: str, port: int, relp: int) -> Listener:
    d = tmp / name
    d.mkdir(exist_ok=True)
    return Listener(d, ["--port", str(port), "--reuseport", "--quiet", "--workers", "1",
                        "--timeout", "0.3", "--spool-dir", str(d / "spool"),
                        "--output-dir", str(d / "out"),
                        "--forward", f"relp://127.0.0.1:{relp}"])


def phase(senders: list[Sender], first: int) -> None:
    for k, s in enumerate(senders):
        s.send(*(ext(q, b"s%d m%d" % (k, q)) for q in range(first, first + PER_PHASE)))


def landed(tmp: Path, name: str, seqs: range) -> dict[int, int]:
    """sender -> number of its messages with a seq in ``seqs`` in receiver ``name``'s files."""
    out: Counter[int] = Counter()
    for f in (tmp / name / "out").glob("*.log"):
        for line in f.read_text().splitlines():
            m = TEXT.search(line)
            if m and int(m.group(2)) in seqs:
                out[int(m.group(1))] += 1
    return dict(out)


def continuity(tmp: Path, seqs: range, names: tuple[str, ...] = ("a", "b")) -> dict[int, str]:
    """Each sender's messages of ``seqs`` all in one receiver: sender -> that receiver."""
    where: dict[int, str] = {}
    for name in names:
        for k, n in landed(tmp, name, seqs).items():
            assert k not in where, f"sender {k} split between {where.get(k)} and {name}"
            assert n == PER_PHASE, (k, name, n)
            where[k] = name
    assert sorted(where) == list(range(SENDERS))
    return where


def test_two_receivers_one_port_exactly_once_across_restarts(
    relp_rsyslog: Rsyslog, tmp_path: Path  # noqa: F811
) -> None:
    port = free_port()
    a = start(tmp_path, "a", port, relp_rsyslog.relp)
    b = start(tmp_path, "b", port, relp_rsyslog.relp)
    runs = [a, b]
    try:
        senders = [Sender(port, f"127.0.0.{k + 1}") for k in range(SENDERS)]
        phase(senders, 1)
        relp_rsyslog.wait(SENDERS * PER_PHASE, timeout=60)
        a.proc.send_signal(0)  # both still running
        first = continuity(tmp_path, range(1, PER_PHASE + 1))
        assert set(first.values()) == {"a", "b"}  # the kernel spread the senders over both
        # a restarts: while it is down b takes every sender, then the group has two again
        assert a.stop() == 0
        phase(senders, PER_PHASE + 1)
        relp_rsyslog.wait(SENDERS * PER_PHASE * 2, timeout=60)
        second = continuity(tmp_path, range(PER_PHASE + 1, 2 * PER_PHASE + 1))
        assert set(second.values()) == {"b"}
        a = start(tmp_path, "a", port, relp_rsyslog.relp)
        runs.append(a)
        phase(senders, 2 * PER_PHASE + 1)
        relp_rsyslog.wait(SENDERS * PER_PHASE * 3, timeout=60)
        continuity(tmp_path, range(2 * PER_PHASE + 1, 3 * PER_PHASE + 1))
        # then b restarts
        assert b.stop() == 0
        b = start(tmp_path, "b", port, relp_rsyslog.relp)
        runs.append(b)
        phase(senders, 3 * PER_PHASE + 1)
        lines = relp_rsyslog.wait(SENDERS * PER_PHASE * 4, timeout=60)
        continuity(tmp_path, range(3 * PER_PHASE + 1, 4 * PER_PHASE + 1))
        assert a.stop() == 0 and b.stop() == 0
    finally:
        for r in runs:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait()
    got = Counter(TEXT.search(msg).groups() for _, msg in lines)  # type: ignore[union-attr]
    want = {(str(k), str(q)) for k in range(SENDERS) for q in range(1, 4 * PER_PHASE + 1)}
    assert set(got) == want and set(got.values()) == {1}, "not exactly once"
    assert len(relp_rsyslog.lines()) == len(want)
    for r in runs:  # a sender moving to the other receiver is a new stream, never a loss
        c = counters(r.stderr())
        assert c["lost"] == 0 and c["duplicates"] == 0 and c["forward_resent"] == 0, c


@pytest.mark.parametrize(("first", "second"), [
    (["--workers", "1"], ["--reuseport"]),
    (["--reuseport"], ["--workers", "2"]),
])
def test_sharing_needs_both_to_ask(tmp_path: Path, first: list[str], second: list[str]
                                   ) -> None:
    """A receiver started without --reuseport never has its port shared, and one started
    without it never joins a shared one: "address already in use", as for any port."""
    port = free_port()
    (tmp_path / "a").mkdir()
    a = Listener(tmp_path / "a", ["--port", str(port), "--quiet", *first])
    try:
        (tmp_path / "b").mkdir()
        with pytest.raises(AssertionError, match="address already in use"):
            Listener(tmp_path / "b", ["--port", str(port), "--quiet", *second])
    finally:
        assert a.stop() == 0
