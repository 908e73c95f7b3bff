"""`digest(state, seed)`: a seeded 64-bit digest of a machine state, the same in every process.

Owns: the digest's definition (`digest_py`, the reference), `key_of` (what a value that is
not plain data is digested as), and loading the optional compiled port (`_digest.c`):
`digest` is the compiled function when it was built, else the reference. Imports: stdlib.

Why not `hash()`: Python salts str and bytes hashes per process (PYTHONHASHSEED) and hashes
functions by address, so which states a hash-compact or bitstate store (check/store.py)
takes for one differed from run to run. This digest depends on the value and the seed only,
and different seeds give unrelated functions (SPIN's swarm: many bitstate searches, each
hashing differently).

Definition (all arithmetic mod 2^64). `M` is splitmix64's finalizer (a bijection of 64-bit
words with full avalanche); the key of tag t is splitmix64's t-th output from the seed,
`k[t] = M(seed + t * 0x9E3779B97F4A7C15)`, so every type has its own key and no value of one
type digests like a value of another for every seed:

  None          M(k[NONE])
  int           in [-2^63, 2^63): M(k[INT] ^ (v mod 2^64)); otherwise as the bytes of its
                minimal two's complement, little-endian, under k[BIGINT]. bool is int here:
                True == 1 and hash(True) == hash(1), so a dict of states (the exact store)
                takes (True,) and (1,) for one key, and the compact stores must too --
                equal values must have equal digests, or a compact store would keep states
                apart that the exact store identifies.
  bytes         acc = M(k[BYTES] ^ len); then per 8-byte little-endian word w (the last one
                zero-padded) acc = M(acc ^ w)
  str           its UTF-8 bytes (surrogates passed through) that way under k[STR]
  tuple         acc = M(k[TUPLE] ^ len); then per element acc = M(acc ^ digest(element))
  frozenset     order-free: s = the sum of the elements' digests, x = the xor of
                M(digest(e) ^ k[MEMBER]); acc = M(M(M(k[FROZENSET] ^ len) ^ s) ^ x)
  other         M(k[OBJECT] ^ digest(key_of(v))): a frozen dataclass with generated
                equality by its class's module and qualified name and its compared fields
                (what its == compares), a function by its module and qualified name (what
                real states hold: `TextPokeLoc` in memory and store buffers, the CSD
                function in a call_single_queue). Anything else is a TypeError naming
                its type.

A subclass of int, str, bytes, tuple or frozenset (an IntEnum, a named tuple) is digested as
its base type: that is what its == compares with. Two distinct functions of one qualified
name (closures of one factory) get one digest: they are taken for one, a collision outside
the omission estimate; no catalogue state holds such closures.
"""

from __future__ import annotations

import dataclasses
import os
import types
from collections.abc import Callable
from types import ModuleType

PURE_ENV = "CROSSMOD_DIGEST_PURE"
MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
# tags: the index of each type's key (the C port uses the same numbers)
NONE, INT, BIGINT, STR, BYTES, TUPLE, FROZENSET, MEMBER, OBJECT = range(1, 10)
_INT_MIN, _INT_END = -(1 << 63), 1 << 63


def mix(x: int) -> int:
    """splitmix64's finalizer (Stafford's variant 13): a bijection of 64-bit words."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def keys(seed: int) -> tuple[int, ...]:
    """The per-type keys of `seed`: index t is splitmix64's t-th output (index 0 unused)."""
    if not 0 <= seed <= MASK:
        raise ValueError(f"digest seed must be in [0, 2**64), not {seed}")
    return tuple(mix((seed + t * GOLDEN) & MASK) for t in range(OBJECT + 1))


def key_of(obj: object) -> tuple:
    """What a value that is not plain data is digested as: plain data that is equal
    exactly when the values are (TypeError for a value that has none)."""
    cls = type(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        params = cls.__dataclass_params__  # type: ignore[attr-defined]
        if not (params.eq and params.frozen):
            raise TypeError(f"cannot digest {cls.__qualname__}: a dataclass without "
                            "generated equality or not frozen")
        return ("dataclass", cls.__module__, cls.__qualname__,
                tuple(getattr(obj, f.name) for f in dataclasses.fields(obj) if f.compare))
    if isinstance(obj, types.FunctionType):
        return ("function", obj.__module__ or "", obj.__qualname__)
    raise TypeError(f"cannot digest a value of type {cls.__module__}.{cls.__qualname__}")


def _words(k: int, b: bytes) -> int:
    acc = mix(k ^ len(b))
    for i in range(0, len(b), 8):
        acc = mix(acc ^ int.from_bytes(b[i:i + 8], "little"))
    return acc


def _walk(obj: object, k: tuple[int, ...]) -> int:
    # bool before int is not needed: bool is an int subclass and digests as its value
    if isinstance(obj, int):
        if _INT_MIN <= obj < _INT_END:
            return mix(k[INT] ^ (obj & MASK))
        # int's own methods, as the C port calls them (a subclass may override them)
        n = int.bit_length(obj) // 8 + 1
        return _words(k[BIGINT], int.to_bytes(obj, n, "little", signed=True))
    if isinstance(obj, tuple):
        acc = mix(k[TUPLE] ^ len(obj))
        for e in obj:
            acc = mix(acc ^ _walk(e, k))
        return acc
    if obj is None:
        return mix(k[NONE])
    if isinstance(obj, str):
        return _words(k[STR], obj.encode("utf-8", "surrogatepass"))
    if isinstance(obj, bytes):
        return _words(k[BYTES], obj)
    if isinstance(obj, frozenset):
        s = x = 0
        for e in obj:
            d = _walk(e, k)
            s += d
            x ^= mix(d ^ k[MEMBER])
        return mix(mix(mix(k[FROZENSET] ^ len(obj)) ^ (s & MASK)) ^ x)
    return mix(k[OBJECT] ^ _walk(key_of(obj), k))


def digest_py(obj: object, seed: int = 0) -> int:
    """The digest of `obj` under `seed` (module docstring), in Python: the reference."""
    return _walk(obj, keys(seed))


def compiled() -> ModuleType | None:
    """The compiled port, bound, or None if it was not built (whatever `PURE_ENV` says:
    the tests compare it with the reference)."""
    try:
        from crossmod.machine import _digest
    except ImportError:
        return None
    _digest.bind(key_of)
    return _digest


_c = None if os.environ.get(PURE_ENV, "") not in ("", "0") else compiled()
digest: Callable[[object, int], int] = _c.digest if _c is not None else digest_py


def port() -> ModuleType | None:
    """The compiled port in use (None when `digest` is the reference): check/store.py's
    bitstate sets its bits with it too."""
    return _c


def backend() -> str:
    """What computes `digest`: for the benchmark and the tests."""
    return "compiled" if _c is not None else "pure Python"
