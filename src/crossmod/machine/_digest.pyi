# The compiled state digest (_digest.c), optional: its signatures for the type checker. It
# is a port of machine/digest.py's digest_py; keep the two in step.

from collections.abc import Callable

def digest(obj: object, seed: int = 0) -> int:
    """digest.digest_py, compiled."""

def bind(key_of: Callable[[object], tuple]) -> None:
    """Bind digest.key_of: what a value that is not plain data is digested as."""
