"""The audit's result: counts, the hazard list, the unverified list, and their renderings.

Owns: `AuditReport` (plain data, JSON-ready) and the 100-column text table.
Imports: stdlib and crossmod.audit only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crossmod.audit.rules import SENSITIVE, Regions, Site

if TYPE_CHECKING:
    from crossmod.audit.image import Image
    from crossmod.audit.symbols import Symbols

REGIONS = (*SENSITIVE, "other")
KINDS = ("jump", "static_call")


@dataclass(slots=True)
class AuditReport:
    image: str
    kind: str
    compression: str | None
    version: str | None
    symbol_source: str
    symbol_count: int
    regions: dict[str, list[int]]
    ro_after_init: list[int] | None
    sites: list[Site]
    allow: frozenset[str]
    tracepoints_fail: bool
    checked: tuple[str, ...] = SENSITIVE  # regions whose writable keys are hazards
    counts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, image: Image, version: str | None, symbols: Symbols, regions: Regions,
              sites: list[Site], allow: frozenset[str], tracepoints_fail: bool,
              checked: tuple[str, ...] = SENSITIVE) -> AuditReport:
        version = version or image.unpacked.boot_version
        kind = "module" if image.relocatable else image.unpacked.container
        report = cls(image.where, kind, image.unpacked.compression, version, symbols.source,
                     len(symbols), {k: list(v) for k, v in regions.text.items()},
                     list(regions.ro_after_init) if regions.ro_after_init else None,
                     sites, allow, tracepoints_fail, checked)
        report.counts = report._count()
        return report

    @property
    def hazards(self) -> list[Site]:
        return [s for s in self.sites if s.hazard and s.region in self.checked]

    @property
    def failing(self) -> list[Site]:
        """Hazards that decide the exit status: not allowed, and not tracepoints unless asked."""
        return [s for s in self.hazards if not s.allowed_by(self.allow)
                and (self.tracepoints_fail or not s.tracepoint)]

    @property
    def unverified(self) -> list[Site]:
        return [s for s in self.sites if not s.verified]

    @property
    def exit_code(self) -> int:
        return 1 if self.failing else 0

    def _count(self) -> dict[str, Any]:
        per_region = {k: Counter(s.region for s in self.sites if s.kind == k) for k in KINDS}
        hazards = self.hazards
        return {
            "jump_entries": sum(1 for s in self.sites if s.kind == "jump"),
            "static_call_sites": sum(1 for s in self.sites if s.kind == "static_call"),
            "total": len(self.sites),
            "per_region": {k: {r: per_region[k][r] for r in REGIONS} for k in KINDS},
            "ro_after_init_keys": sum(1 for s in self.sites if s.key_ro),
            "tracepoint_sites": sum(1 for s in self.sites if s.tracepoint),
            "verified": sum(1 for s in self.sites if s.verified),
            "unverified": len(self.unverified),
            "hazards": len(hazards),
            "hazards_tracepoint": sum(1 for s in hazards if s.tracepoint),
            "hazards_allowed": sum(1 for s in hazards if s.allowed_by(self.allow)),
            "hazards_failing": len(self.failing),
            "hazard_keys": sorted({s.key_name for s in hazards if not s.tracepoint}),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "kind": self.kind,
            "compression": self.compression,
            "version": self.version,
            "symbols": {"source": self.symbol_source, "count": self.symbol_count},
            "regions": {k: [hex(a) for a in v] for k, v in self.regions.items()},
            "ro_after_init": [hex(a) for a in self.ro_after_init] if self.ro_after_init else None,
            "counts": self.counts,
            "allow": sorted(self.allow),
            "checked_regions": list(self.checked),
            "exit_code": self.exit_code,
            "hazards": [_site_json(s, self.allow) for s in self.hazards],
            "unverified": [_site_json(s, self.allow) for s in self.unverified],
        }

    def render(self) -> str:
        c = self.counts
        lines = [
            f"image     {self.image} ({self.kind}"
            + (f", {self.compression}" if self.compression else "") + ")",
            f"version   {_cut(self.version or '(not found)', 90)}",
            f"symbols   {_cut(self.symbol_source, 70)}, {self.symbol_count} names",
            "",
            f"{'':14}{'total':>8}" + "".join(f"{r:>9}" for r in REGIONS),
        ]
        for k, label in (("jump", "jump entries"), ("static_call", "static calls")):
            row = c["per_region"][k]
            total = c["jump_entries"] if k == "jump" else c["static_call_sites"]
            lines.append(f"{label:14}{total:>8}" + "".join(f"{row[r]:>9}" for r in REGIONS))
        lines += [
            "",
            f"verified {c['verified']}/{c['total']}; keys in ro_after_init: "
            f"{c['ro_after_init_keys']}; tracepoint sites: {c['tracepoint_sites']}",
            f"hazards (writable key in {'/'.join(self.checked)}): {c['hazards']} "
            f"({c['hazards_tracepoint']} tracepoint, {c['hazards_allowed']} allowed, "
            f"{c['hazards_failing']} failing)",
        ]
        if self.ro_after_init is None:
            lines.append("note: no __start_ro_after_init range, so every key counts as writable")
        if self.hazards:
            lines += ["", *_table(self.hazards, self.allow)]
        if self.unverified:
            lines += ["", f"sites that do not verify ({len(self.unverified)}):"]
            lines += [f"{s.addr:016x} {_cut(s.func, 30):30} {_cut(s.problem or '', 52)}"
                      for s in self.unverified]
        return "\n".join(lines)


def _site_json(s: Site, allow: frozenset[str]) -> dict[str, Any]:
    return {
        "kind": s.kind, "address": hex(s.addr), "function": s.func, "region": s.region,
        "instruction": s.insn, "key": s.key_name, "key_address": hex(s.key),
        "key_section": s.key_section, "key_ro_after_init": s.key_ro,
        "tracepoint": s.tracepoint, "flags": list(s.flags), "verified": s.verified,
        "problem": s.problem, "allowed": s.allowed_by(allow),
    }


# address, region, function+off, instruction, key, key section, tp/allowed: 100 columns. A
# hazard's key is never in ro_after_init, so its section name is short (.data, .bss, (extern)).
_ROW = "{:16} {:7} {:24} {:5} {:31} {:9} {:2}"


def _table(hazards: list[Site], allow: frozenset[str]) -> list[str]:
    out = [_ROW.format("address", "region", "function+off", "insn", "key", "key sect.", "tp")]
    for s in sorted(hazards, key=lambda s: (s.tracepoint, s.region, s.addr)):
        mark = ("tp" if s.tracepoint else "") or ("ok" if s.allowed_by(allow) else "")
        out.append(_ROW.format(f"{s.addr:016x}", s.region, _cut(s.func, 24), s.insn,
                               _cut(s.key_name, 31), _cut(s.key_section, 9), mark).rstrip())
    return out


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 2] + ".."
