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

arm64 sites (`Site.arch == "arm64"`) hold little-endian A64 words: the trap is BRK (any
immediate), not a first byte 0xCC. Arm ARM concurrent modification and execution (CMODX,
quoted in arch/arm64/kernel/patching.c and KERNEL.md D.1): executing a word that changed
since the CPU's last context synchronization event gives the old or the new instruction
only when every value involved is one of B, BL, NOP, BRK, SVC, HVC, SMC; otherwise the CPU
may behave as any instruction sequence (CONSTRAINED UNPREDICTABLE), which `fetch_outcomes`
offers as a torn outcome (witness: the old word's low half with the new word's high half).
"""

from __future__ import annotations

from collections.abc import Iterator
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
    arch: str = "x86"

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
# What a CPU may fetch from one site: per byte, the set of values each byte held (per-byte
# model); otherwise the set of whole values the site held (snapshot, arm64).
View = tuple[frozenset[int], ...] | frozenset[bytes]


def decode(site: Site, raw: bytes) -> Outcome:
    """What executing `raw` at `site` does (the decoder's view, first byte first).

    The trap outcome is called "int3" on both architectures: INT3 on x86, BRK on arm64.
    """
    if site.arch == "arm64":
        if is_brk(raw):
            return ("int3", raw)
    elif raw[0] == INT3:
        return ("int3", raw)
    eff = site.effect_of(raw)
    if eff is None:
        return ("torn", raw)
    return ("effect", eff, raw)


def initial_view(model: str, raw: bytes) -> View:
    """The fetch view of a CPU that has just serialized with `raw` in memory."""
    if model == "per-byte":
        return tuple(frozenset((b,)) for b in raw)
    return frozenset((raw,))


_widen_cache: dict[tuple[tuple[frozenset[int], ...], bytes], tuple[frozenset[int], ...]] = {}


def widen_view(model: str, view: View, raw: bytes) -> View:
    """Add the site's new memory contents `raw` to a CPU's set of fetchable values."""
    if model != "per-byte":
        assert isinstance(view, frozenset)
        return view if raw in view else view | {raw}
    assert isinstance(view, tuple)
    key = (view, raw)
    out = _widen_cache.get(key)
    if out is None:
        out = tuple(s if b in s else s | {b} for s, b in zip(view, raw, strict=True))
        out = _widen_cache[key] = view if out == view else out
    return out


_outcome_cache: dict[tuple, tuple[Outcome, ...]] = {}
# Sites are cached by identity (cheaper than hashing their encodings): two systems may give
# different sites one name. Every cached site is kept alive here so that its id is not reused.
_cached_sites: dict[int, Site] = {}


def fetch_outcomes(model: str, site: Site, view: View) -> tuple[Outcome, ...]:
    """Every distinct outcome a fetch may have, in a fixed order (the explorer's choices).

    Byte combinations that decode alike are one outcome: the explorer branches on what the
    CPU does, not on which stale byte it saw. A witness of each outcome's bytes is kept for
    the trail.
    """
    key = (model, id(site), view)
    hit = _outcome_cache.get(key)
    if hit is not None:
        return hit
    _cached_sites[id(site)] = site
    raws: Iterator[bytes]
    words: list[bytes] = []
    if model == "per-byte":
        assert isinstance(view, tuple)
        raws = (bytes(c) for c in product(*(sorted(s) for s in view)))
    else:
        assert isinstance(view, frozenset)
        words = sorted(view)
        raws = iter(words)
    seen: dict[tuple, Outcome] = {}
    for raw in raws:
        out = decode(site, raw)
        k = out[:2] if out[0] == "effect" else out[:1]
        if k not in seen:
            seen[k] = out
    if (model == "arm64" and site.arch == "arm64" and len(view) > 1 and ("torn",) not in seen
            and not all(cmodx_safe(w) for w in words)):
        seen[("torn",)] = ("torn", words[0][:2] + words[-1][2:])
    res = tuple(seen[k] for k in sorted(seen, key=_outcome_order))
    _outcome_cache[key] = res
    return res


def _outcome_order(k: tuple) -> tuple:
    return ({"effect": 0, "int3": 1, "torn": 2}[k[0]], k[1:] if len(k) > 1 else ())


def hexbytes(raw: bytes) -> str:
    return " ".join(f"{b:02X}" for b in raw)


# ---- arm64 (A64) instruction words ------------------------------------------------------

A64_NOP = 0xD503201F
BRK64_OPCODE_KPROBES = 0xD4200080  # BRK #0x004 (arch/arm64/include/asm/brk-imm.h)


def a64(word: int) -> bytes:
    """An A64 instruction as the 4 little-endian bytes memory holds."""
    return word.to_bytes(4, "little")


def a64_b(offset: int) -> bytes:
    """`B <pc + offset>` (aarch64_insn_gen_branch_imm, AARCH64_INSN_BRANCH_NOLINK)."""
    return a64(0x14000000 | ((offset >> 2) & 0x03FFFFFF))


def a64_bl(offset: int) -> bytes:
    """`BL <pc + offset>` (AARCH64_INSN_BRANCH_LINK)."""
    return a64(0x94000000 | ((offset >> 2) & 0x03FFFFFF))


def _word(raw: bytes) -> int | None:
    return int.from_bytes(raw, "little") if len(raw) == 4 else None


def is_brk(raw: bytes) -> bool:
    w = _word(raw)
    return w is not None and (w & 0xFFE0001F) == 0xD4200000


def cmodx_safe(raw: bytes) -> bool:
    """One of the instructions the Arm ARM lets a CPU execute while it is being modified:
    B, BL, NOP, BRK, SVC, HVC, SMC (`aarch64_insn_hotpatch_safe()`'s list)."""
    w = _word(raw)
    if w is None:
        return False
    return ((w & 0x7C000000) == 0x14000000 or w == A64_NOP
            or ((w & 0xFFE0001C) == 0xD4000000 and (w & 0x3) != 0) or is_brk(raw))
