# The compiled scanner (_scan.c), optional: its signatures for the type checker. Each
# function is a port of the pure-Python reference named beside it; keep the three in step.

from collections.abc import Callable
from typing import Any

class LineCache:
    """bytes -> object memo for the readers' caches."""

    def clear(self) -> None: ...
    def __len__(self) -> int: ...

def bind(event: type, word: bytes, space: bytes, digit: bytes, stack_marker: object) -> None:
    """Bind the Event class, the character classes of \\w, \\s, \\d and the stack marker."""

def walk_block(blob: bytes, cpu: int, params: tuple[int, int, int, int, int, bool, int, Any],
               fcache: dict[bytes, Any], memo: LineCache, out: list[Any],
               miss: Callable[[int, int, int, int], None],
               problem: Callable[[int, str], None]) -> int:
    """Lost pages; datpages.PageDecoder._walk_py."""

def scan_chunk(chunk: str | bytes, state: list[Any], evs: list[Any], held: dict[int, int],
               latest: dict[int, Any], ctx: tuple[Any, ...]) -> Any:
    """None, or NotImplemented for a chunk that is not 1-byte text;
    text.TextReader._scan_chunk_py."""

def count_upto(batch: list[Any], start: int, counts: dict[str, list[int]], kind: dict[str, int],
               other: int) -> int:
    """One past the first print event from `start`, or len(batch); analyze._count_upto_py."""
