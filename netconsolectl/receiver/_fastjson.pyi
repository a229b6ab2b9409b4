import builtins
from collections.abc import Callable, Hashable
from typing import Any

def common(
    payloads: list[bytes],
    keys: list[Hashable],
    start: int,
    sources: dict[Hashable, tuple[Any, bytes]],
    states: dict[Any, Any],
    prio: tuple[bytes | None, ...],
    crashing: dict[Any, object],
    received: bytes,
    parts: list[bytes],
    move_to_end: Callable[[Any], None],
    crash: tuple[bytes, tuple[bytes, ...], int] | None,
    frags: Reassembler | None,
    now: float,
    frag_keys: list[Hashable] | None,
    done_keys: list[Hashable] | None,
    /,
) -> tuple[int, int, int, int, int]: ...

class Reassembler:
    bytes: int
    duplicates: int
    evicted: int
    limited: int
    timeout: float
    max_messages: int
    max_bytes: int
    def __init__(
        self,
        done: type,
        header: type,
        timeout: float,
        max_messages: int,
        max_bytes: int,
        per_source: int,
        recent: int,
        source_records: int,
        overhead: int,
        max_total: int,
        max_pieces: int,
        /,
    ) -> None: ...
    def __len__(self) -> int: ...
    def add(self, source: Any, header: Any, body: builtins.bytes, now: float, /) -> list[Any]: ...
    def add_to_pending(self, *args: Any) -> None: ...
    def expire(self, now: float, /) -> list[Any]: ...
    def flush(self) -> list[Any]: ...
    def take_ready(self) -> list[Any]: ...

def set_line(pieces: tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes], /) -> None: ...

def split(
    msgs: memoryview,
    n: int,
    mmsg_size: int,
    len_offset: int,
    data: memoryview,
    size: int,
    names: memoryview,
    step: int,
    namelen: int,
    /,
) -> tuple[list[bytes], list[bytes]]: ...

def frame_lines(data: builtins.bytes, events: bool, /) -> tuple[builtins.bytes, int, int]: ...
def otlp_from_json(record: builtins.bytes, /) -> builtins.bytes | None: ...
def syslog_from_json(record: builtins.bytes, pen: builtins.bytes, /) -> builtins.bytes | None: ...
