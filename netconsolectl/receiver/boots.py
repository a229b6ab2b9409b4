"""Stable message ids: the same kernel record gets the same id however often it is delivered.

An extended netconsole message carries the printk ``seq`` of its record. ``seq`` is unique
within one boot of the sender (kernel/printk/printk_ringbuffer.c numbers every record from 0 at
boot), so a record is named by (sender, boot, seq)::

    id = hex16(blake2b("HOST|BOOT")) + "-" + seq

* HOST is the sender's address. The port is left out on purpose: two targets on one host (two
  collectors, or two listen processes) carry the same records, and a pipeline that merges them
  should see the same ids.
* ``seq`` rather than ``msgid``: ``msgid`` is per target (drivers/net/netconsole.c counts the
  messages each target sends), ``seq`` is the record's own number, the same on every target.
* BOOT is the sender's estimated boot time in whole seconds since the epoch: receive time minus
  the kernel timestamp (``ts_usec`` counts from boot). It is taken from the first message of a
  boot the receiver sees and then kept for that stream, so jitter in the receive time does not
  change it; a reset (seq going back, see :mod:`netconsolectl.receiver.sources`) starts a new
  boot, at least one second after the previous one so two boots never share a name.
* Across a restart of ``listen``: with ``--spool-dir``, the boots are remembered in the spool
  directory (``boots-*.json``). A message after the restart continues a remembered boot when its
  seq and timestamp are not behind the boot's first ones and its own estimate is within
  :func:`tolerance` of the remembered boot time; otherwise it starts a new boot. Without
  ``--spool-dir`` nothing is remembered and the estimate is made afresh: the same boot keeps its
  id unless the estimate falls into the neighbouring second.

Basic-format messages (no seq) cannot be recognised again; each gets an id unique to its
reception: a prefix random per process, then a counter.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time

#: Boots remembered; the oldest are forgotten first.
MAX_BOOTS = 65536
#: Seconds between saves of the boot table (only when it changed).
SAVE_INTERVAL = 1.0


def id_prefix(host: str, boot: int) -> str:
    digest = hashlib.blake2b(f"{host}|{boot}".encode(), digest_size=8).hexdigest()
    return digest + "-"


def tolerance(ts_usec: int) -> float:
    """How far (s) two estimates of one boot may differ: the receive delay, plus the drift of
    the sender's clock against ours (printk's local_clock is not NTP-disciplined; 0.1 %)."""
    return max(60.0, ts_usec / 1e9)


class BootTable:
    """Boot estimates per source (host, port), optionally saved to a directory."""

    def __init__(self, directory: str | None = None, name: str = "boots-w0.json") -> None:
        self.path = os.path.join(directory, name) if directory else None
        #: (host, port) -> [boot, first_seq, first_ts]
        self.boots: dict[tuple[str, int], list[int]] = {}
        self.dirty = False
        self._saved = 0.0
        if directory:
            for fname in sorted(os.listdir(directory)):
                if fname.startswith("boots-") and fname.endswith(".json"):
                    self._load(os.path.join(directory, fname))

    def _load(self, path: str) -> None:
        try:
            with open(path) as f:
                data = json.load(f)
            for key, value in data.items():
                host, _, port = key.rpartition("|")
                self.boots[(host, int(port))] = [int(v) for v in value[:3]]
        except (OSError, ValueError, TypeError, AttributeError):
            return  # a damaged table only costs new boot names

    def start(
        self, source: tuple[str, int], seq: int, ts: int, now: float, previous: int | None = None
    ) -> str:
        """The id prefix for a stream (re)starting at (seq, ts): continue a remembered boot or
        start a new one. ``previous`` is the boot just left by a reset."""
        estimate = int(now - ts / 1e6)
        known = self.boots.get(source) if previous is None else None
        if (
            known is not None
            and seq >= known[1]
            and ts >= known[2]
            and abs(estimate - known[0]) <= tolerance(ts)
        ):
            return id_prefix(source[0], known[0])
        if previous is not None and estimate <= previous:
            estimate = previous + 1
        self.boots.pop(source, None)
        self.boots[source] = [estimate, seq, ts]
        if len(self.boots) > MAX_BOOTS:
            del self.boots[next(iter(self.boots))]
        self.dirty = True
        return id_prefix(source[0], estimate)

    def boot_of(self, source: tuple[str, int]) -> int | None:
        b = self.boots.get(source)
        return None if b is None else b[0]

    def save(self, *, force: bool = False) -> None:
        if self.path is None or not self.dirty:
            return
        now = time.monotonic()
        if not force and now - self._saved < SAVE_INTERVAL:
            return
        self._saved = now
        self.dirty = False
        data = {f"{h}|{p}": v for (h, p), v in self.boots.items()}
        tmp = self.path + ".tmp"
        with contextlib.suppress(OSError):
            with open(tmp, "w") as f:
                json.dump(data, f, separators=(",", ":"))
            os.replace(tmp, self.path)


def reception_prefix() -> str:
    """The id prefix of basic-format messages received by this process."""
    return "r" + os.urandom(8).hex()[1:] + "-"
