"""``--json``: one JSON object per line.

Messages::

    {"type": "message", "host": str, "port": int, "received": ISO 8601 UTC,
     "release": str|null, "facility": int|null, "level": int|null, "seq": int|null,
     "ts_usec": int|null, "cont": bool|null, "text": str, ["raw": base64 str,]
     "fields": {str: str}, "incomplete": bool, "id": str}

``raw`` is there only when the text's bytes are not valid UTF-8: ``text`` then has U+FFFD for
each invalid byte and ``raw`` the exact bytes, base64 encoded. ``id`` is the stable message id
(netconsolectl.receiver.boots).

Events carry ``type``, ``host``, ``port``, ``received`` and their own keys (see the README).
The encoder is hand-rolled for speed; its output is plain JSON (ASCII, no spaces), the same as
``json.dumps(obj, separators=(",", ":"))``.
"""

from __future__ import annotations

import base64
import json
import os
import select
import time
from typing import Any

from netconsolectl.receiver.model import Event, Message
from netconsolectl.receiver.output import FdWriter, IsoTime
from netconsolectl.receiver.sinks import SinkBase

_enc_c = json.encoder.encode_basestring_ascii
#: ASCII characters that JSON strings carry as they are.
_SAFE = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')


def _enc(s: str) -> str:
    """``json.dumps(s)`` (ASCII output); long plain-ASCII text is checked in C and copied."""
    if s.isascii() and not s.encode("ascii").translate(None, _SAFE):
        return f'"{s}"'
    return str(_enc_c(s))


#: Events about a host (address) rather than one stream.
HOST_EVENTS = ("silent", "resumed")

#: json.dumps(obj, separators=(",", ":")) without building an encoder on every call.
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def _name(m: Message) -> str:
    """``"name":...,`` from the sender's ``hostname`` userdata, or nothing without one."""
    if not m.fields:
        return ""
    name = m.fields.get("hostname")
    return "" if name is None else f'"name":{_enc(name)},'


class JsonSink(SinkBase):
    #: ``forward`` events (a pipeline lost or back) are written here.
    wants_forward_events = True

    def __init__(self, out: FdWriter) -> None:
        self.out = out
        self.iso = IsoTime()
        self._prefix: dict[tuple[str, int], str] = {}
        self._release: dict[str | None, str] = {None: "null"}

    def counts(self) -> dict[str, int]:
        return {"output_dropped": self.out.dropped}

    def prefix(self, host: str, port: int) -> str:
        key = (host, port)
        p = self._prefix.get(key)
        if p is None:
            if len(self._prefix) > 4096:
                self._prefix.clear()
            p = f'"host":{_enc(host)},"port":{port},"received":"'
            self._prefix[key] = p
        return p

    def release(self, release: str | None) -> str:
        r = self._release.get(release)
        if r is None:
            if len(self._release) > 256:
                self._release = {None: "null"}
            r = "null" if release is None else _enc(release)
            self._release[release] = r
        return r

    def encode(self, m: Message) -> str:
        if m.seq is None:
            meta = '"release":null,"facility":null,"level":null,"seq":null,"ts_usec":null,' \
                   '"cont":null'
        else:
            meta = (
                f'"release":{self.release(m.release)},"facility":{m.facility},'
                f'"level":{m.level},"seq":{m.seq},"ts_usec":{m.ts_usec},'
                f'"cont":{"true" if m.cont else "false"}'
            )
        fields = _dumps(m.fields) if m.fields else "{}"
        raw = "" if m.raw is None else f',"raw":"{base64.b64encode(m.raw).decode()}"'
        return (
            f'{{"type":"message",{self.prefix(m.host, m.port)}{self.iso(m.received)}",{meta},'
            f'"text":{_enc(m.text)}{raw},"fields":{fields},{_name(m)}'
            f'"incomplete":{"true" if m.incomplete else "false"},"id":"{m.id}"}}\n'
        )

    def message(self, m: Message) -> None:
        self.out.write(self.encode(m).encode())

    def event(self, e: Event) -> None:
        obj: dict[str, Any] = {
            "type": e.type,
            "host": e.host,
            "port": e.port,
            "received": self.iso(e.received),
        }
        if e.type in HOST_EVENTS:
            obj["port"] = None  # about the address, whatever port it sends from
        obj.update(e.data)
        self.out.write((_dumps(obj) + "\n").encode())

    def counters(self, values: dict[str, int]) -> None:
        self.out.write((_dumps({"type": "counters", **values}) + "\n").encode())

    def flush(self) -> None:
        self.out.flush()

    @property
    def broken(self) -> bool:
        return self.out.broken

    def close(self) -> None:
        self.out.flush()


# -- reading the lines back (the forwarding process, netconsolectl.receiver.sinks.process) --

_SECONDS: dict[str, int] = {}


def epoch(received: str | float) -> float:
    """``received`` back to seconds since the epoch (exact to the microsecond)."""
    if not isinstance(received, str):
        return float(received)
    import calendar

    whole, _, frac = received.rstrip("Z").partition(".")
    sec = _SECONDS.get(whole)
    if sec is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        sec = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
        _SECONDS[whole] = sec
    # half a microsecond up: formatting it again floors to the same microsecond
    return sec + (int(frac or 0) + 0.5) / 1e6


def message_from_json(d: dict[str, Any]) -> Message:
    raw = d.get("raw")
    return Message(
        d["host"], d["port"], epoch(d["received"]), d["text"], release=d["release"],
        facility=d["facility"], level=d["level"], seq=d["seq"], ts_usec=d["ts_usec"],
        cont=d["cont"], fields=d["fields"], incomplete=d["incomplete"],
        raw=None if raw is None else base64.b64decode(raw), id=d["id"],
    )  # fmt: skip


def event_from_json(d: dict[str, Any]) -> Event:
    data = {k: v for k, v in d.items() if k not in ("type", "host", "port", "received")}
    return Event(d["type"], d["host"], d["port"] or 0, epoch(d["received"]), data)


class Reports:
    """JSON objects, one per line, from a process of this program's on a pipe (the forwarding
    and delivery processes report their counters so)."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self._buf = b""

    @property
    def ended(self) -> bool:
        """The writer is gone and everything it wrote was read (the fd is closed)."""
        return self.fd < 0

    def read(self, timeout: float | None = 0.0) -> list[dict[str, Any]]:
        """The whole lines that came, waiting up to ``timeout`` seconds (None: as long as it
        takes) for one or for the end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        lines: list[bytes] = []
        while self.fd >= 0:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                left = None if deadline is None else deadline - time.monotonic()
                if lines or (left is not None and left <= 0):
                    break
                select.select([self.fd], [], [], left)
                continue
            if not chunk:
                os.close(self.fd)
                self.fd = -1
                break
            *new, self._buf = (self._buf + chunk).split(b"\n")
            lines += new
        return [json.loads(line) for line in lines]
