# The compiled state digest (_digest.c), optional: its signatures for the type checker. It
# is a port of machine/digest.py's digest_py and check/store.py's bit functions; keep them
# in step.

from collections.abc import Callable

def digest(obj: object, seed: int = 0) -> int:
    """digest.digest_py, compiled."""

def bind(key_of: Callable[[object], tuple]) -> None:
    """Bind digest.key_of: what a value that is not plain data is digested as."""

def bit_positions(h: int, m: int, k: int) -> list[int]:
    """store.bit_positions, compiled."""

def bits_add(bits: bytearray, m: int, k: int, h: int) -> bool:
    """store.bits_add_py, compiled."""

def bits_has(bits: bytearray, m: int, k: int, h: int) -> bool:
    """store.bits_has_py, compiled."""

class U64Set:
    """store.U64SetPy, compiled: a set of 64-bit digests."""

    def add(self, h: int) -> bool: ...
    def __contains__(self, h: object) -> bool: ...
    def __len__(self) -> int: ...
    def nbytes(self) -> int: ...
