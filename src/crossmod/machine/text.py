"""Kernel text: patch sites, their encodings, and the instruction-fetch models.

Owns: what executing a site's bytes means (an effect, INT3, or a torn instruction) and what
bytes a CPU may fetch given the values the site held since its last serializing event.
Imports: stdlib only.

Fetch models (DESIGN.md "Instruction fetch"):
  per-byte   SDM-literal: until a CPU serializes, each byte may read any value it held since
             the CPU's last serializing event, independently per byte (tearing possible).
  snapshot   a fetch reads the whole site as of one instant no earlier than the CPU's last
             serializing event (no mixing within one fetch).
  arm64      one 32-bit single-copy-atomic word: any whole value held since the last context
             synchronization event (same as snapshot for a 4-byte site; kept separate so that
             the architecture, not the site size, decides).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

INT3 = 0xCC
NOP5 = bytes.fromhex("0f1f440000")
NOP2 = bytes.fromhex("6690")

FETCH_MODELS = ("per-byte", "snapshot", "arm64")


@dataclass(frozen=True)
class Site:
    """A patch site: `size` bytes of kernel text and the encodings it may legally hold.

    `encodings` maps byte strings to the effect a CPU has when it executes them
    ("nop", "jmp l_yes", "call fire_sched_in_preempt_notifiers"). `int3_effect`, when set,
    is the effect of an *intentional* INT3 left at the site (an armed kprobe), handled by
    its owner when the text-poke handler declines it.
    """

    name: str
    initial: bytes
    encodings: tuple[tuple[bytes, str], ...]
    int3_effect: str | None = None
    noinstr: bool = False

    @property
    def size(self) -> int:
        return len(self.initial)

    def effect_of(self, raw: bytes) -> str | None:
        for enc, eff in self.encodings:
            if enc == raw:
                return eff
        return None

    def effects(self) -> frozenset[str]:
        out = {eff for _, eff in self.encodings}
        if self.int3_effect:
            out.add(self.int3_effect)
        return frozenset(out)


def jmp32(disp: int) -> bytes:
    return b"\xe9" + disp.to_bytes(4, "little", signed=True)


def call32(disp: int) -> bytes:
    return b"\xe8" + disp.to_bytes(4, "little", signed=True)


# A fetched outcome: ("effect", name, bytes) | ("int3", bytes) | ("torn", bytes)
Outcome = tuple


def decode(site: Site, raw: bytes) -> Outcome:
    """What executing `raw` at `site` does (the decoder's view, first byte first)."""
    if raw[0] == INT3:
        return ("int3", raw)
    eff = site.effect_of(raw)
    if eff is None:
        return ("torn", raw)
    return ("effect", eff, raw)


def initial_view(model: str, raw: bytes) -> tuple:
    """The fetch view of a CPU that has just serialized with `raw` in memory."""
    if model == "per-byte":
        return tuple(frozenset((b,)) for b in raw)
    return frozenset((raw,))


def widen_view(model: str, view: tuple | frozenset, raw: bytes) -> tuple | frozenset:
    """Add the site's new memory contents `raw` to a CPU's set of fetchable values."""
    if model == "per-byte":
        return tuple(s if b in s else s | {b} for s, b in zip(view, raw, strict=True))
    if raw in view:
        return view
    return view | {raw}


_outcome_cache: dict[tuple, tuple[Outcome, ...]] = {}


def fetch_outcomes(model: str, site: Site, view: tuple | frozenset) -> tuple[Outcome, ...]:
    """Every distinct outcome a fetch may have, in a fixed order (the explorer's choices).

    Byte combinations that decode alike are one outcome: the explorer branches on what the
    CPU does, not on which stale byte it saw. A witness of each outcome's bytes is kept for
    the trail.
    """
    key = (model, site.name, view)
    hit = _outcome_cache.get(key)
    if hit is not None:
        return hit
    if model == "per-byte":
        raws = (bytes(c) for c in product(*(sorted(s) for s in view)))
    else:
        raws = iter(sorted(view))
    seen: dict[tuple, Outcome] = {}
    for raw in raws:
        out = decode(site, raw)
        k = out[:2] if out[0] == "effect" else out[:1]
        if k not in seen:
            seen[k] = out
    res = tuple(seen[k] for k in sorted(seen, key=_outcome_order))
    _outcome_cache[key] = res
    return res


def _outcome_order(k: tuple) -> tuple:
    return ({"effect": 0, "int3": 1, "torn": 2}[k[0]], k[1:] if len(k) > 1 else ())


def hexbytes(raw: bytes) -> str:
    return " ".join(f"{b:02X}" for b in raw)
