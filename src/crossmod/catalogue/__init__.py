"""The protocol catalogue: every checkable protocol, its variants, and the verdicts expected.

Owns: `ENTRIES` (name -> Entry), `ROWS` (what `crossmod check --all` runs) and `build()`,
which validates user-supplied knobs and returns a `System`. Imports: machine, kernel,
catalogue modules. Engines never import this package; they receive Systems.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crossmod.catalogue import arm64, x86_int3
from crossmod.catalogue import deferral as dfr
from crossmod.catalogue import static_keys as sk
from crossmod.catalogue import x86_history as hist
from crossmod.machine.state import MEMORY_MODELS
from crossmod.machine.system import System
from crossmod.machine.text import FETCH_MODELS


class CatalogueError(ValueError):
    """A protocol name, variant or knob the catalogue cannot honour (CLI exit 2)."""


@dataclass(frozen=True)
class Entry:
    """A protocol the catalogue knows: how to build it and within which bounds."""

    name: str
    build: Callable[..., System]
    summary: str
    variants: dict[str, str]  # variant -> one line on what it changes
    cpus: tuple[int, int] = (2, 8)
    nmis: tuple[int, int] = (0, 3)
    fetch: tuple[str, ...] = ("per-byte", "snapshot")
    arch: str = "x86"
    defaults: dict[str, Any] = field(default_factory=dict)
    sites: tuple[int, int] | None = None  # patch sites per key (--sites), where it applies
    memory: tuple[str, ...] = MEMORY_MODELS
    steps: dict[str, str] = field(default_factory=dict)  # step -> variant dropping it


@dataclass(frozen=True)
class Row:
    """One line of `crossmod check --all`: a configuration and the verdict it must give."""

    protocol: str
    variant: str = "default"
    knobs: dict[str, Any] = field(default_factory=dict)
    expected: str = "safe"
    prop: str | None = None
    why: str = ""
    length: int | None = None  # moves in the shortest counterexample (pinned by the tests)
    liveness: bool = False  # also check property 5 (`Bounds.liveness`)


ENTRIES: dict[str, Entry] = {e.name: e for e in (
    Entry("x86-int3-batch", x86_int3.build_int3_batch,
          "today's smp_text_poke_batch_finish (INT3, sync, tail, sync, first byte, sync)",
          {"default": "the kernel as of 2025",
           "no-sync1": "K2: no sync after the INT3 write",
           "no-sync2": "K3: no sync after the tail write (Intel said unnecessary, 2010)",
           "no-sync3": "K4: no sync after the first-byte write",
           "no-publish-barrier": "K6: no F2 smp_wmb / H1 smp_rmb (fixmap-era text_poke)",
           "stack-descriptor": "K5: 2019 refcount through a pointer to an on-stack descriptor",
           "global-descriptor": "the 2022 fix of K5: one global descriptor",
           "spin-in-handler": "the #BP handler spins, interrupts off, until the batch is "
                              "done instead of emulating (not the kernel's; property 5)"},
          steps={"S1 sync after INT3": "no-sync1", "S2 sync after tail": "no-sync2",
                 "S3 sync after first byte": "no-sync3",
                 "F2/H1 publish barrier": "no-publish-barrier"}),
    *(Entry(name, dfr.builder(name), summary, dfr.VARIANT_DOC[name], cpus=(2, 3),
            nmis=(0, 1), memory=("tso", "pso"), steps=dfr.STEPS.get(name, {}))
      for name, summary in (
          ("defer-none", "IPI deferral off: text sync and kernel TLB flush IPI every CPU"),
          ("defer-ct", "v6: deferral through context-tracking work bits (G.3)"),
          ("defer-cr3", "v8: deferral to the kPTI CR3 write on entry (H.4)"))),
    Entry("x86-memcpy", hist.build_memcpy,
          "K1: the new instruction memcpy'd over live text", {"default": "no protocol"}),
    Entry("x86-fixup-2010", hist.build_fixup_2010,
          "2010 text_poke_fixup as Masami Hiramatsu listed its steps (no sync after the tail)",
          {"default": "steps (1)-(9) as written"}),
    Entry("x86-cpumask-2019", hist.build_cpumask_2019,
          "2019 cpumask text_poke_sync; #BP handler clears its bit (K8)",
          {"default": "the #BP handler waits for the breakpoint to go away",
           "last-clearer-completes": "Andy Lutomirski's remedy: never wait, last clearer "
                                     "completes the step"},
          defaults={"nmis": 1}, nmis=(0, 2)),
    Entry("x86-ipi-irqs-off", hist.build_ipi_irqs_off,
          "K9: CPUs calling on_each_cpu(wait=1) with interrupts disabled",
          {"default": "every CPU a caller"}, cpus=(2, 4), nmis=(0, 0)),
    Entry("x86-stop-machine", hist.build_stop_machine,
          "text_poke_smp(): patch under stop_machine (v2.6.33-v3.x)",
          {"default": "first CPU in MULTI_STOP_RUN writes, the others spin"}, cpus=(2, 5)),
    Entry("x86-static-key", sk.build_x86_static_key,
          "static_key_enable(): jump_label_update() queues every site of the key into one "
          "int3 batch (three syncs whatever K)",
          {"default": "kernel/jump_label.c and the x86 hooks as of 2025",
           "ro-after-init": "the key is __ro_after_init and flipped after mark_rodata_ro()"},
          cpus=(2, 4), nmis=(0, 2), sites=(1, 4)),
    Entry("x86-static-call", sk.build_x86_static_call,
          "static_call_update(): the trampoline and each inline site through "
          "smp_text_poke_single()",
          {"default": "kernel/static_call_inline.c and arch/x86/kernel/static_call.c",
           "ro-after-init": "the call is DEFINE_STATIC_CALL_RO and updated after boot"},
          cpus=(2, 4), nmis=(0, 2), sites=(1, 3)),
    Entry("static-key-race", sk.build_static_key_race,
          "one static key flipped from two CPUs at once (x86 hooks); the final text must "
          "match the final count",
          {"default": "static_branch_dec racing static_branch_inc (count 1)",
           "enable-disable": "static_key_enable racing static_key_disable (count 0)",
           "dec-inc-dec": "dec racing inc-then-dec, de752774f38b's interleaving (count 1)",
           "dec-inc-dec-83ab38ef0a0b": "the same with the June 2024 slow-dec path that "
                                       "de752774f38b fixed: a decrement is lost",
           "enable-enable": "two static_key_enable: each, once returned, sees the branch on",
           "disable-disable": "two static_key_disable: the second returns on count 0 while "
                              "the first still patches",
           "disable-disable-lock-first": "the same with Steven Rostedt's 2024-03 proposal: "
                                         "jump_label_lock() before the test",
           "enable-enable-one-read": "two enables with Josh Poimboeuf's 2024-03 proposal: "
                                     "one read, return if it is not 0 (-1 included)"},
          cpus=(2, 3), nmis=(0, 1), sites=(1, 2)),
    Entry("arm64-jump-label", arm64.build_arm64_jump_label,
          "static_key_enable() on arm64: aarch64_insn_patch_text_nosync() per site, then "
          "(since 2024) one kick_all_cpus_sync()",
          {"default": "the 2024 fix: arch_jump_label_transform_queue/apply",
           "nosync": "K10: f6cc0c501649, nosync writes and no cross-CPU sync"},
          cpus=(2, 4), nmis=(0, 2), fetch=("arm64",), arch="arm64", sites=(1, 4),
          memory=("sc",)),
    Entry("arm64-stop-machine", arm64.build_arm64_stop_machine,
          "aarch64_insn_patch_text(): the patch under stop_machine(), one CPU elected master",
          {"default": "the last CPU to arrive is master (2022)",
           "first-master": "K11: the first CPU to arrive is master"},
          cpus=(2, 4), nmis=(0, 2), fetch=("arm64",), arch="arm64", sites=(1, 4),
          memory=("sc",)),
)}


ROWS: tuple[Row, ...] = (
    Row("x86-int3-batch", why="today's protocol"),
    Row("x86-int3-batch", knobs={"fetch": "snapshot"}),
    Row("x86-int3-batch", knobs={"cpus": 3, "nmis": 1, "execs": 1},
        why="3 CPUs, an NMI anywhere executes the site"),
    Row("x86-int3-batch", knobs={"cpus": 3, "nmis": 1, "execs": 1, "fetch": "snapshot"}),
    Row("x86-int3-batch", "no-sync1", expected="violation", length=19, prop="torn-instruction"),
    Row("x86-int3-batch", "no-sync2", expected="violation", length=38, prop="torn-instruction",
        why="per-byte fetch: old first byte cannot pair with new tail bytes... but INT3 can"),
    Row("x86-int3-batch", "no-sync2", {"fetch": "snapshot"},
        why="whole-site fetch: Intel's 2010 answer holds"),
    Row("x86-int3-batch", "no-sync3", expected="violation", length=51, prop="unexpected-int3",
        why="a CPU still fetching the stale INT3 traps after the batch was torn down"),
    Row("x86-int3-batch", "no-publish-barrier",
        why="TSO keeps stores in order: refs=1 is visible before the INT3"),
    Row("x86-int3-batch", "no-publish-barrier", {"memory": "pso"}, expected="violation", length=12,
        prop="unexpected-int3", why="stores reordered: INT3 visible before refs=1"),
    Row("x86-int3-batch", "stack-descriptor", expected="violation", length=57,
        prop="use-after-return"),
    Row("x86-int3-batch", "global-descriptor"),
    Row("x86-int3-batch", liveness=True, why="every task finishes: no cycle at all"),
    Row("x86-int3-batch", knobs={"cpus": 3, "execs": 1, "users": 1}, liveness=True,
        why="the patch completes while a CPU runs user code forever and takes its IPIs"),
    Row("x86-int3-batch", "spin-in-handler", expected="deadlock", length=20, prop="deadlock",
        why="the patcher waits on the spinning CPU's CSD, which waits for the patcher"),
    Row("x86-int3-batch", "spin-in-handler", {"cpus": 3, "execs": 1, "users": 1},
        liveness=True, expected="violation", length=26, prop="liveness",
        why="a third CPU keeps running: no deadlock, but S1 never completes"),
    Row("x86-memcpy", expected="violation", length=3, prop="torn-instruction"),
    Row("x86-memcpy", knobs={"fetch": "snapshot"}, expected="violation", length=3,
        prop="torn-instruction", why="memcpy's bytes become visible one at a time"),
    Row("x86-fixup-2010", expected="violation", length=30, prop="torn-instruction",
        why="no sync between the tail and the first byte: as no-sync2"),
    Row("x86-fixup-2010", knobs={"fetch": "snapshot"}),
    Row("x86-cpumask-2019", expected="deadlock", length=14, prop="deadlock",
        why="NMI on the patcher hits the INT3; #BP waits for the patcher under it"),
    Row("x86-cpumask-2019", "last-clearer-completes"),
    Row("x86-cpumask-2019", knobs={"users": 1}, liveness=True, expected="violation", length=13,
        prop="liveness", why="K8 while cpu1 runs user code: no deadlock, but the NMI'd "
        "patcher never finishes"),
    Row("x86-cpumask-2019", "last-clearer-completes", {"users": 1}, liveness=True),
    Row("x86-cpumask-2019", knobs={"cpus": 3, "nmis": 0, "users": 1}, liveness=True,
        expected="violation", length=23, prop="liveness",
        why="no NMI needed: a CPU that traps before a sync's mask is set clears no bit of "
            "it and waits in #BP, IRQs off (Andy: spinning handlers must check for syncs)"),
    Row("x86-cpumask-2019", "last-clearer-completes", {"cpus": 3, "nmis": 0, "users": 1},
        liveness=True),
    Row("x86-cpumask-2019", "last-clearer-completes", {"nmi_on": "all"},
        expected="violation", length=23, prop="torn-instruction",
        why="an NMI nested in the #BP handler after its bit was cleared, before the IRET, "
            "runs the site unserialized: hpa's invariant 2 does not hold with NMIs"),
    Row("x86-ipi-irqs-off", expected="deadlock", length=7, prop="deadlock"),
    Row("x86-stop-machine"),
    Row("x86-stop-machine", knobs={"cpus": 3}),
    Row("x86-stop-machine", knobs={"cpus": 3, "users": 1}, liveness=True,
        why="the stopper runs from the IPI on the CPU in user code too"),
    Row("x86-stop-machine", knobs={"nmis": 1}, expected="violation", length=18,
        prop="torn-instruction",
        why="stop_machine cannot stop NMIs"),
    Row("x86-static-key", why="one int3 batch for the key"),
    Row("x86-static-key", knobs={"cpus": 3}),
    Row("x86-static-key", knobs={"sites": 2, "nmis": 1}, why="an NMI runs a site mid-batch"),
    Row("x86-static-key", "ro-after-init", expected="violation", length=6, prop="ro-after-init",
        why="static_key_enable writes key->enabled in read-only memory"),
    Row("x86-static-call", why="every CPU calls the new function once the update returned"),
    Row("x86-static-call", knobs={"sites": 2}),
    Row("x86-static-call", "ro-after-init", expected="violation", length=4, prop="ro-after-init"),
    Row("static-key-race", why="inc racing dec: no deadlock, text matches the count"),
    Row("static-key-race", "enable-disable"),
    Row("static-key-race", "dec-inc-dec"),
    Row("static-key-race", "dec-inc-dec-83ab38ef0a0b", expected="violation", length=22,
        prop="static-key-count", why="WARN_ON_ONCE(!static_key_slow_try_dec()) and the key "
        "stays enabled with no user (Darrick Wong's report)"),
    Row("static-key-race", knobs={"cpus": 3}, why="a third CPU takes the sync IPIs"),
    Row("static-key-race", "enable-enable",
        why="the second enable waits on jump_label_mutex while the count is -1"),
    Row("static-key-race", "disable-disable", expected="violation", length=12,
        prop="static-key-contract", why="today's kernel: static_key_disable() returns when "
        "the count is already 0, without waiting for the disabler still patching"),
    Row("static-key-race", "disable-disable-lock-first",
        why="testing under jump_label_mutex waits for the patching disabler"),
    Row("static-key-race", "enable-enable-one-read", expected="violation", length=14,
        prop="static-key-contract", why="the single read returns on -1 (enable in progress)"),
    Row("arm64-jump-label", "nosync", expected="violation", length=17, prop="patch-visibility",
        why="K10: a CPU keeps the old NOP after static_key_enable returned"),
    Row("arm64-jump-label", why="the 2024 fix: one kick_all_cpus_sync per key flip"),
    Row("arm64-jump-label", knobs={"cpus": 3, "sites": 2}),
    Row("arm64-stop-machine", "first-master", expected="violation", length=20,
        prop="torn-instruction",
        why="K11: a late CPU runs the probed instruction while the master rewrites it"),
    Row("arm64-stop-machine", why="last CPU is master: all others spin in the callback"),
    Row("arm64-stop-machine", knobs={"cpus": 3}),
    Row("arm64-stop-machine", "first-master", {"patch": "jump-label"},
        why="NOP <-> B is CMODX-safe: K11 needs a site that is not"),
    *(Row(**r) for r in dfr.ROWS),
)


def build(name: str, variant: str = "default", **knobs: Any) -> System:
    """The System for `name`/`variant` with the given knobs (cpus, nmis, fetch, memory...),
    validated against the entry's bounds."""
    entry = ENTRIES.get(name)
    if entry is None:
        raise CatalogueError(f"unknown protocol {name!r}; valid: {', '.join(ENTRIES)}")
    if variant not in entry.variants:
        raise CatalogueError(f"unknown variant {variant!r} of {name}; valid: "
                             f"{', '.join(entry.variants)}")
    knobs = {**entry.defaults, **{k: v for k, v in knobs.items() if v is not None}}
    _check_knobs(entry, knobs)
    _check_range(entry, "cpus", knobs.get("cpus", 2), entry.cpus)
    _check_range(entry, "nmis", knobs.get("nmis", 0), entry.nmis)
    if "fetch" in knobs and knobs["fetch"] not in entry.fetch:
        raise CatalogueError(f"--fetch {knobs['fetch']!r} does not apply to {name}; valid: "
                             f"{', '.join(entry.fetch)} (all models: {', '.join(FETCH_MODELS)})")
    if "memory" in knobs and knobs["memory"] not in MEMORY_MODELS:
        raise CatalogueError(f"unknown memory model {knobs['memory']!r}; valid: "
                             f"{', '.join(MEMORY_MODELS)}")
    if "memory" in knobs and knobs["memory"] not in entry.memory:
        raise CatalogueError(f"--memory {knobs['memory']!r} does not apply to {name}; valid: "
                             f"{', '.join(entry.memory)}")
    if "sites" in knobs:
        if entry.sites is None:
            raise CatalogueError(f"--sites does not apply to {name} (one patch site)")
        _check_range(entry, "sites", knobs["sites"], entry.sites)
    _check_names(entry, knobs)
    try:
        return entry.build(variant, **knobs)
    except ValueError as e:  # a knob combination the protocol's builder rejects
        raise CatalogueError(str(e)) from None


def _check_knobs(entry: Entry, knobs: dict[str, Any]) -> None:
    """Knob names the entry's builder takes, with values of the type it declares (a replay
    token carries its knobs as data: a damaged or foreign one must not reach the builder)."""
    import inspect

    params = inspect.signature(entry.build).parameters
    for k, v in knobs.items():
        if k not in params or k == "variant":
            continue  # named by `_check_names`, after the checks that say more
        ann = str(params[k].annotation)
        ok = (isinstance(v, bool) if "bool" in ann else
              isinstance(v, int) and not isinstance(v, bool) if "int" in ann else
              isinstance(v, str) if "str" in ann else True)
        if not ok and not (v is None and "None" in ann):
            raise CatalogueError(f"knob {k}={v!r} of {entry.name} is not a{'n' * ('int' in ann)} "
                                 f"{ann.split(' ')[0]}")


def _check_names(entry: Entry, knobs: dict[str, Any]) -> None:
    import inspect

    params = [p for p in inspect.signature(entry.build).parameters if p != "variant"]
    for k in knobs:
        if k not in params:
            raise CatalogueError(f"knob {k!r} does not apply to {entry.name} (it takes "
                                 f"{', '.join(params)})")


def _check_range(entry: Entry, knob: str, value: int, bounds: tuple[int, int]) -> None:
    lo, hi = bounds
    if not lo <= value <= hi:
        raise CatalogueError(f"--{knob} {value} is outside what {entry.name} can honour "
                             f"({lo}..{hi})")
