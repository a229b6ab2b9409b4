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
    /,
) -> tuple[int, int, int]: ...

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
