"""`crossmod necessity`: dropping each step of a protocol in turn, per fetch and memory
model (DESIGN.md "Engines"), on x86-int3-batch and defer-cr3."""

from __future__ import annotations

from click.testing import CliRunner

from crossmod.catalogue import ENTRIES, build
from crossmod.check.necessity import necessity
from crossmod.check.verdict import Bounds
from crossmod.cli import main

MODELS = ("per-byte/tso", "per-byte/pso", "snapshot/tso", "snapshot/pso")


def required(protocol: str) -> dict[str, list[str]]:
    def build_one(variant: str, fetch: str, memory: str):
        return build(protocol, variant, fetch=fetch, memory=memory)

    base, rows = necessity(build_one, ENTRIES[protocol].steps, ("per-byte", "snapshot"),
                           ("tso", "pso"), Bounds())
    assert tuple(base.results) == MODELS
    assert set(base.results.values()) == {"safe"}
    return {r.step: r.required_under(base.results) for r in rows}


def test_int3_batch_steps_by_model():
    req = required("x86-int3-batch")
    assert req["S1 sync after INT3"] == ["per-byte/tso", "per-byte/pso"]
    assert req["S2 sync after tail"] == ["per-byte/tso", "per-byte/pso"]
    assert req["S3 sync after first byte"] == list(MODELS)
    assert req["F2/H1 publish barrier"] == ["per-byte/pso", "snapshot/pso"]


def test_defer_cr3_steps_by_model():
    req = required("defer-cr3")
    assert req["T0/D2 sender smp_mb (PTE cleared by xchg)"] == []
    for step in ("T0/D2 smp_mb, PTE by plain store", "E2a signal before CR3 write",
                 "E2b entry CR3 write flushes", "kPTI CR3 switch on entry",
                 "S3 sync after first byte"):
        assert req[step] == list(MODELS), step
    assert req["S1 sync after INT3"] == ["per-byte/tso", "per-byte/pso"]


def test_cli_prints_the_table_and_refuses_protocols_without_steps():
    r = CliRunner().invoke(main, ["necessity", "x86-int3-batch", "--memory", "tso"])
    assert r.exit_code == 0, r.output
    assert "required under" in r.output and "S3 sync after first byte" in r.output
    assert "per-byte/pso" not in r.output
    r = CliRunner().invoke(main, ["necessity", "x86-memcpy"])
    assert r.exit_code == 2
