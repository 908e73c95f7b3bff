"""Counts and classifications on the gcc-built fixture (data/fixture.c).

The fixture has, by construction (see the comments in fixture.c):
  jump entries   entry 2 (rw_key nop5, ro_key nop2)
                 noinstr 3 (bss_key jmp, __tracepoint_demo.key nop5, ext_key nop2)
                 cpuidle 1 (rw_key nop5)
                 other 3 (rw_key nop5, rw_key int3s [bad], ro_key jmp to wrong place [bad])
  static calls   entry 2 (rw_call call, ro_call tail jmp)
                 noinstr 1 (tp_func_demo call)
                 other 1 (rw_call key but calls __SCT__ro_call [bad])
so 13 sites, 10 verified, 3 with keys in ro_after_init, 7 hazards of which 2 are tracepoints.
"""

from __future__ import annotations

import re

from crossmod.audit import Options, audit_image

PER_REGION = {
    "jump": {"entry": 2, "noinstr": 3, "cpuidle": 1, "other": 3},
    "static_call": {"entry": 2, "noinstr": 1, "cpuidle": 0, "other": 1},
}
HAZARD_KEYS = ["__SCK__rw_call", "bss_key", "ext_key", "rw_key"]


def assert_fixture_counts(report) -> None:
    c = report.counts
    assert (c["jump_entries"], c["static_call_sites"], c["total"]) == (9, 4, 13)
    assert c["per_region"] == PER_REGION
    assert (c["verified"], c["unverified"]) == (10, 3)
    assert c["ro_after_init_keys"] == 3
    assert c["tracepoint_sites"] == 2
    assert (c["hazards"], c["hazards_tracepoint"], c["hazards_failing"]) == (7, 2, 5)
    assert c["hazard_keys"] == HAZARD_KEYS


def site(report, kind: str, region: str, key: str, verified: bool = True):
    """Sites are found by what they are, not by offsets that depend on gcc's code layout."""
    (found,) = [s for s in report.sites if (s.kind, s.region, s.key_name, s.verified)
                == (kind, region, key, verified)]
    return found


def test_vmlinux_with_symtab_counts(fx):
    report = audit_image(str(fx.vmlinux))
    assert report.symbol_source == "ELF .symtab"
    assert report.version == "Linux version 6.99.0-crossmod-fixture (test@crossmod) #1 SMP"
    assert_fixture_counts(report)
    assert report.exit_code == 1


def test_each_region_and_key_class(fx):
    report = audit_image(str(fx.vmlinux))
    entry = site(report, "jump", "entry", "rw_key")
    assert entry.func == "entry_fn"
    assert (entry.region, entry.kind, entry.insn, entry.key_name) == ("entry", "jump", "nop5",
                                                                      "rw_key")
    assert (entry.key_section, entry.key_ro, entry.hazard) == (".data", False, True)
    assert entry.flags == ("objtool_nop",)
    ro = site(report, "jump", "entry", "ro_key")
    assert (ro.insn, ro.key_name, ro.key_section, ro.hazard) == ("nop2", "ro_key",
                                                                 "ro_after_init", False)
    bss = site(report, "jump", "noinstr", "bss_key")
    assert (bss.region, bss.insn, bss.key_section, bss.flags) == ("noinstr", "jmp2", ".bss",
                                                                  ("branch",))
    idle = site(report, "jump", "cpuidle", "rw_key")
    assert (idle.region, idle.hazard) == ("cpuidle", True)
    other = site(report, "jump", "other", "rw_key")
    assert (other.region, other.key_name, other.hazard) == ("other", "rw_key", False)


def test_tracepoint_key_and_call_are_set_apart(fx):
    report = audit_image(str(fx.vmlinux))
    tps = [s for s in report.sites if s.tracepoint]
    assert sorted(s.key_name for s in tps) == ["__SCK__tp_func_demo", "__tracepoint_demo+0x8"]
    assert all(s.region == "noinstr" and s.hazard for s in tps)
    assert not any(s in report.failing for s in tps)


def test_static_calls_decoded_with_flags_and_trampolines(fx):
    report = audit_image(str(fx.vmlinux))
    call = site(report, "static_call", "entry", "__SCK__rw_call")
    assert (call.insn, call.flags, call.key_ro, call.hazard) == ("call5", (), False, True)
    assert call.func.startswith("entry_fn+")
    tail = site(report, "static_call", "entry", "__SCK__ro_call")
    assert (tail.insn, tail.flags, tail.key_ro, tail.hazard) == ("jmp5", ("tail",), True, False)


def test_sites_that_fail_verification(fx):
    report = audit_image(str(fx.vmlinux))
    bad = sorted((s.kind, s.key_name, s.problem) for s in report.unverified)
    assert bad[0] == ("jump", "ro_key", bad[0][2])
    assert re.fullmatch(r"jmp to text_fn\+0x[0-9a-f]+, entry says text_fn\+0x[0-9a-f]+",
                        bad[0][2])
    assert bad[1:] == [
        ("jump", "rw_key", "int3 (1 byte) is not a 2/5-byte NOP or JMP"),
        ("static_call", "__SCK__rw_call", "call to __SCT__ro_call, not __SCT__rw_call"),
    ]
    assert all(s.region == "other" and s.func.startswith("text_fn+") for s in report.unverified)


def test_cpuidle_inside_noinstr_is_noinstr(fx):
    report = audit_image(str(fx.idle_nested))
    assert report.counts["per_region"]["jump"] == {"entry": 2, "noinstr": 4, "cpuidle": 0,
                                                   "other": 3}
    assert "cpuidle" not in report.regions
    assert report.counts["hazards"] == 7


def test_allow_list_clears_hazards(fx):
    allow = frozenset({"rw_key", "rw_call", "bss_key", "ext_key"})  # rw_call: short name
    report = audit_image(str(fx.vmlinux), Options(allow=allow))
    assert (report.counts["hazards_allowed"], report.counts["hazards_failing"]) == (5, 0)
    assert report.exit_code == 0
    strict = audit_image(str(fx.vmlinux), Options(allow=allow, tracepoints_fail=True))
    assert strict.counts["hazards_failing"] == 2
    assert strict.exit_code == 1


def test_relocatable_module_with_relocations_applied(fx):
    report = audit_image(str(fx.obj))
    assert report.kind == "module"
    assert report.counts["per_region"] == PER_REGION
    assert (report.counts["verified"], report.counts["hazards"]) == (10, 7)
    ext = next(s for s in report.sites if s.key_name == "ext_key")
    assert (ext.key_section, ext.hazard) == ("(extern)", True)
    # Relocations resolved: the entry's JMP reaches its target, the call its trampoline.
    assert site(report, "jump", "noinstr", "bss_key").insn == "jmp2"
    assert site(report, "static_call", "entry", "__SCK__rw_call").insn == "call5"


def test_every_site_inside_text_and_sorted_regions(fx):
    report = audit_image(str(fx.vmlinux))
    lo, hi = report.regions["noinstr"]
    assert lo < hi
    assert all(s.addr >= 0xFFFFFFFF81000000 for s in report.sites)
