"""Reading herd7's AArch64 litmus syntax: what each construct becomes, and a one-line
error naming file, line and column for anything else -- never another exception."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossmod.litmus.catalogue import read_kinds
from crossmod.litmus.isa import as_value, parse_insn
from crossmod.litmus.parse import parse, strip_comments
from crossmod.litmus.run import check
from crossmod.litmus.syntax import Code, Fault, Insn, LitmusError, Loc, Mem, Opaque, Rel, Sym

from .conftest import CASES

BASE = """AArch64 t
{ 0:X1=x; }
 P0          | P1          ;
 STR W0,[X1] | LDR W2,[X1] ;
exists (1:X2=1)
"""


def test_the_parts_of_a_test():
    t = parse("""AArch64 MP+x
"a description line"
CacheType=IDC
Variant=fatal
Stable=X9
{
  ins_t 0:X0=instr:"B .+12"; 0:X1=P1:L0; [y]=P1:L0; ins_t *1:X30; void *1:X1;
  0:X2=label:"P1:L1"; x=3; 0:X3=NOP; 0:X4=-1; 0:X5=0x10; pte_x=(oa:phy_x);
}
 P0          | P1          | P1.F    ;
 NOP         |L0:          | ERET    ;
             | B L1        |         ;
             |L1: MOV W9,#1|         ;
locations [1:X9; x;]
~exists (1:X9=1 \\/ ~x=3 /\\ fault(P1:L0,UndefinedInstruction) => [y]=P1:L0)
""", "t.litmus")
    assert t.name == "MP+x" and t.info == {"CacheType": "IDC", "Variant": "fatal",
                                           "Stable": "X9"}
    l0, l1 = Code(1, False, 0), Code(1, False, 1)
    assert t.init == {
        Loc(0, "X0"): Insn("B", (Rel(12),)), Loc(0, "X1"): l0, Loc(addr=Sym("y")): l0,
        Loc(1, "X30"): 0, Loc(1, "X1"): 0, Loc(0, "X2"): l1, Loc(addr=Sym("x")): 3,
        Loc(0, "X3"): Insn("NOP"), Loc(0, "X4"): -1, Loc(0, "X5"): 16,
        Loc(addr=Sym("pte_x")): Opaque("(oa:phy_x)")}
    assert t.exported == {l0, l1}
    assert [(ln.labels, str(ln.insn)) for ln in t.threads[1].code] == [
        (("L0",), "None"), ((), "B L1"), (("L1",), "MOV W9,#1")]
    assert [str(ln.insn) for ln in t.threads[1].handler] == ["ERET"]
    assert t.locations == [Loc(1, "X9"), Loc(addr=Sym("x"))]
    assert t.quantifier == "~exists"
    assert t.prop == ("implies",
                      ("or", [("atom", Loc(1, "X9"), 1),
                              ("and", [("not", ("atom", Loc(addr=Sym("x")), 3)),
                                       ("fault", Fault(l0, None, "UndefinedInstruction"))])]),
                      ("atom", Loc(addr=Sym("y")), l0))


def test_no_condition_is_forall_true_and_comments_nest():
    t = parse("AArch64 t\n(* a (* nested *) comment *)\n{ }\n P0 ;\n NOP ;\n", "t")
    assert (t.quantifier, t.prop) == ("forall", ("true",))
    assert strip_comments("a (* b (* c *) d *) e", "f") == "a " + " " * 17 + " e"


def test_instructions_as_values_are_position_independent():
    """A label branch as memory holds it is an offset from its own address (herd7 prints
    `B L1` read as data as instr:"B .+4"): it equals the instr:"..." value with that
    offset and executes relative to where it is fetched."""
    here, target = Code(0, False, 3), Code(0, False, 4)
    b = parse_insn("B L1", lambda name: target)
    assert as_value(b, here) == parse_insn("B .+4", None)
    assert str(as_value(b, here)) == "B .+4"
    assert parse_insn("LDR W4,[X5,W6,SXTW]", None).args[1] == Mem(("X", 5), index=("W", 6),
                                                                  extend="SXTW")
    assert Code.at_addr(Code(2, True, 5).addr) == Code(2, True, 5)


@pytest.mark.parametrize("edit,message", [
    (("LDR W2,[X1]", "FOO W2,[X1]"), "t.litmus:4:16: unsupported instruction 'FOO' (crossmod"),
    (("STR W0,[X1]", "B nowhere  "), "t.litmus:4:2: no label nowhere in P0"),
    ((" ;\nexists", " | NOP ;\nexists"), "t.litmus:4:1: 3 columns where the header has 2"),
    (("exists", "(* exists"), "t.litmus:5:1: unterminated comment (* ..."),
    (("AArch64", "X86"), "t.litmus:1:1: not an AArch64 litmus test (architecture 'X86')"),
    (("0:X1=x;", "0:X1=x; 0:X1=y;"), "t.litmus:2:11: 0:X1 initialised twice"),
    (("0:X1=x;", "0:X1=%;"), "t.litmus:2:8: unexpected character '%'"),
    (("(1:X2=1)", "(1:X2=1 /\\ )"), "t.litmus:5:19: expected a location, not ')'"),
    (("(1:X2=1)", "(1:X2=1) junk"), "t.litmus:5:17: unexpected 'junk' after the condition"),
    (("0:X1=x;", "0:X1=P1:nolab;"), "t.litmus:2:8: no label nolab in P1"),
    (("| P1          ;", "| P2          ;"), "t.litmus:3:1: threads must be P0..P1, not P0, P2"),
    (("{", "CacheType=XYZ\n{"), "t.litmus:2:1: CacheType=XYZ: 'XYZ' is not DIC or IDC"),
    (("LDR W2,[X1]", "LDR W99,[X1]"), "t.litmus:4:16: no register 'W99'"),
    (("LDR W2,[X1]", "DC CIVAC,X1"), "t.litmus:4:16: unsupported DC operation 'CIVAC'"),
    (("{ 0:X1=x; }", "{ 0:X1=x;"), "t.litmus:2:1: initial state '{' is never closed"),
])
def test_errors_name_the_file_line_and_column(edit, message):
    with pytest.raises(LitmusError) as e:
        check(parse(BASE.replace(*edit), "t.litmus"))
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_kinds_files_take_both_spellings_and_refuse_the_rest(tmp_path):
    f = tmp_path / "kinds.txt"
    f.write_text("A Allowed\nB Forbid\nC Require\n")
    assert read_kinds(f) == {"A": "Allowed", "B": "Forbidden", "C": "Required"}
    f.write_text("A Allowed\nB Maybe\n")
    with pytest.raises(LitmusError, match=r"kinds.txt:2:1: expected 'NAME"):
        read_kinds(f)


SEEDS = [p.read_text() for p in sorted(CASES.glob("*.litmus"))[:12]]
JUNK = st.sampled_from(list(";|:[](){},#=*\"\\/~ \nPXW0123456789abLDRSTBNOP.+-&"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.integers(0, 2000), st.integers(0, 8),
       st.lists(JUNK, max_size=6))
def test_a_damaged_test_is_read_or_refused_in_one_line(text, at, cut, junk):
    """Any edit of a valid test parses and runs, or raises LitmusError: never another
    exception (the CLI turns that one into exit status 2)."""
    at %= len(text)
    damaged = text[:at] + "".join(junk) + text[at + cut:]
    try:
        check(parse(damaged, "d.litmus"), max_states=20_000)
    except LitmusError as e:
        assert str(e).startswith("d.litmus:") and "\n" not in str(e)


@pytest.mark.parametrize("variant,states", [
    ("", ["0:X9=0; fault(P0:L0,UndefinedInstruction);"]),
    ("Variant=fatal\n", ["0:X9=0; fault(P0:L0,UndefinedInstruction);"]),
    ("Variant=skip\n", ["0:X9=1; fault(P0:L0,UndefinedInstruction);"]),
    ("Variant=handled\n", []),   # UDF faults again when run once more: discarded
])
def test_a_fault_without_a_handler_goes_as_the_variant_says(variant, states):
    t = parse(f"AArch64 t\n{variant}{{ }}\n P0 ;\nL0: UDF #0 ;\n MOV W9,#1 ;\n"
              "exists (0:X9=1 /\\ fault(P0:L0,UndefinedInstruction))\n", "t")
    assert check(t).final_states == states
