"""The protocol catalogue: every checkable protocol, its variants, its parameters, and the
verdicts expected.

Owns: `ENTRIES` (name -> Entry), `ROWS` (what `crossmod check --all` runs) and `build()`,
which checks given parameters against the entry's schema (catalogue/params.py) and returns
a `System`. Imports: machine, kernel, catalogue modules. Engines never import this
package; they receive Systems.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from crossmod.catalogue import arm64, x86_int3
from crossmod.catalogue import deferral as dfr
from crossmod.catalogue import static_keys as sk
from crossmod.catalogue import x86_history as hist
from crossmod.catalogue.params import CatalogueError, ParamSpec, Value, brief, resolve, specs
from crossmod.machine.system import System

__all__ = ["ENTRIES", "ROWS", "CatalogueError", "Entry", "Row", "assignments", "build",
           "command_args", "resolve_params"]


@dataclass(frozen=True)
class Entry:
    """A protocol the catalogue knows: how to build it and from which parameters.

    `params` is the schema (a frozen dataclass of catalogue/params.py fields) the builder
    takes; `variant_defaults` the values a variant's scenario sets where they differ from
    the schema's defaults (a value the user gives wins)."""

    name: str
    build: Callable[[str, Any], System]  # (variant, params) -> System
    summary: str
    variants: dict[str, str]  # variant -> one line on what it changes
    params: type  # the schema: a frozen dataclass of catalogue/params.py fields
    arch: str = "x86"
    variant_defaults: Mapping[str, Mapping[str, Value]] = field(default_factory=dict)
    steps: dict[str, str] = field(default_factory=dict)  # step -> variant dropping it

    @property
    def specs(self) -> tuple[ParamSpec, ...]:
        return specs(self.params)

    def spec(self, name: str) -> ParamSpec | None:
        return next((s for s in self.specs if s.name == name), None)

    def resolve(self, variant: str, given: Mapping[str, object]) -> Any:
        """The schema instance for `variant` with `given` values (CatalogueError if one
        cannot be honoured)."""
        return resolve(self.name, self.params, self.variant_defaults.get(variant, {}), given)

    def defaults(self, variant: str = "default") -> dict[str, Value]:
        """Every parameter's value when the user gives none."""
        return asdict(self.resolve(variant, {}))

    def _choices(self, name: str) -> tuple[str, ...]:
        s = self.spec(name)
        return s.choices if s is not None and s.choices is not None else ()

    def _range(self, name: str) -> tuple[int, int] | None:
        s = self.spec(name)
        return s.range if s is not None else None

    @property
    def fetch(self) -> tuple[str, ...]:
        return self._choices("fetch")

    @property
    def memory(self) -> tuple[str, ...]:
        return self._choices("memory")

    @property
    def cpus(self) -> tuple[int, int] | None:
        return self._range("cpus")

    @property
    def nmis(self) -> tuple[int, int] | None:
        return self._range("nmis")


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
          params=x86_int3.PatchParams,
          steps={"S1 sync after INT3": "no-sync1", "S2 sync after tail": "no-sync2",
                 "S3 sync after first byte": "no-sync3",
                 "F2/H1 publish barrier": "no-publish-barrier"}),
    *(Entry(name, dfr.builder(name), summary, dfr.VARIANT_DOC[name], dfr.DeferralParams,
            variant_defaults=dfr.VARIANT_PARAMS[name], steps=dfr.STEPS.get(name, {}))
      for name, summary in (
          ("defer-none", "IPI deferral off: text sync and kernel TLB flush IPI every CPU"),
          ("defer-ct", "v6: deferral through context-tracking work bits (G.3)"),
          ("defer-cr3", "v8: deferral to the kPTI CR3 write on entry (H.4)"))),
    Entry("x86-memcpy", hist.build_memcpy,
          "K1: the new instruction memcpy'd over live text", {"default": "no protocol"},
          x86_int3.ExecParams),
    Entry("x86-fixup-2010", hist.build_fixup_2010,
          "2010 text_poke_fixup as Masami Hiramatsu listed its steps (no sync after the tail)",
          {"default": "steps (1)-(9) as written"}, x86_int3.ExecParams),
    Entry("x86-cpumask-2019", hist.build_cpumask_2019,
          "2019 cpumask text_poke_sync; #BP handler clears its bit (K8)",
          {"default": "the #BP handler waits for the breakpoint to go away",
           "last-clearer-completes": "Andy Lutomirski's remedy: never wait, last clearer "
                                     "completes the step"},
          params=hist.CpumaskParams),
    Entry("x86-ipi-irqs-off", hist.build_ipi_irqs_off,
          "K9: CPUs calling on_each_cpu(wait=1) with interrupts disabled",
          {"default": "every CPU a caller"}, params=hist.IrqsOffParams),
    Entry("x86-stop-machine", hist.build_stop_machine,
          "text_poke_smp(): patch under stop_machine (v2.6.33-v3.x)",
          {"default": "first CPU in MULTI_STOP_RUN writes, the others spin"},
          params=hist.StopMachineParams),
    Entry("x86-static-key", sk.build_x86_static_key,
          "static_key_enable(): jump_label_update() queues every site of the key into one "
          "int3 batch (three syncs whatever K)",
          {"default": "kernel/jump_label.c and the x86 hooks as of 2025",
           "ro-after-init": "the key is __ro_after_init and flipped after mark_rodata_ro()"},
          params=sk.KeyParams),
    Entry("x86-static-call", sk.build_x86_static_call,
          "static_call_update(): the trampoline and each inline site through "
          "smp_text_poke_single()",
          {"default": "kernel/static_call_inline.c and arch/x86/kernel/static_call.c",
           "ro-after-init": "the call is DEFINE_STATIC_CALL_RO and updated after boot"},
          params=sk.CallParams),
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
          params=sk.RaceParams),
    Entry("arm64-jump-label", arm64.build_arm64_jump_label,
          "static_key_enable() on arm64: aarch64_insn_patch_text_nosync() per site, then "
          "(since 2024) one kick_all_cpus_sync()",
          {"default": "the 2024 fix: arch_jump_label_transform_queue/apply",
           "nosync": "K10: f6cc0c501649, nosync writes and no cross-CPU sync"},
          params=arm64.Arm64KeyParams, arch="arm64"),
    Entry("arm64-stop-machine", arm64.build_arm64_stop_machine,
          "aarch64_insn_patch_text(): the patch under stop_machine(), one CPU elected master",
          {"default": "the last CPU to arrive is master (2022)",
           "first-master": "K11: the first CPU to arrive is master"},
          params=arm64.Arm64StopMachineParams, arch="arm64"),
)}


ROWS: tuple[Row, ...] = (
    Row("x86-int3-batch", why="today's protocol"),
    Row("x86-int3-batch", knobs={"fetch": "snapshot"}),
    Row("x86-int3-batch", knobs={"cpus": 3, "nmis": 1, "execs": 1},
        why="3 CPUs, an NMI anywhere executes the site"),
    Row("x86-int3-batch", knobs={"cpus": 3, "nmis": 1, "execs": 1, "fetch": "snapshot"}),
    Row("x86-int3-batch", "no-sync1", expected="violation", length=19, prop="torn-instruction"),
    Row("x86-int3-batch", "no-sync2", expected="violation", length=37, prop="torn-instruction",
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
    Row("x86-int3-batch", "spin-in-handler", expected="deadlock", length=19, prop="deadlock",
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
    Row("x86-cpumask-2019", expected="deadlock", length=13, prop="deadlock",
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
    Row("x86-ipi-irqs-off", expected="deadlock", length=6, prop="deadlock"),
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


def build(name: str, variant: str = "default", /, **knobs: object) -> System:
    """The System for `name`/`variant` with the given parameters (cpus, nmis, fetch,
    memory, sites and the entry's own: `crossmod list NAME`), checked against the entry's
    schema; every parameter not given takes the variant's default."""
    entry = _entry(name, variant)
    return entry.build(variant, entry.resolve(variant, knobs))


def resolve_params(name: str, variant: str = "default", /, **knobs: object
                   ) -> dict[str, Value]:
    """Every parameter `build(name, variant, **knobs)` would build with (defaults filled)."""
    return asdict(_entry(name, variant).resolve(variant, knobs))


def _entry(name: str, variant: str) -> Entry:
    entry = ENTRIES.get(name)
    if entry is None:
        raise CatalogueError(f"unknown protocol {brief(name)}; valid: {', '.join(ENTRIES)}")
    if variant not in entry.variants:
        raise CatalogueError(f"unknown variant {brief(variant)} of {name}; valid: "
                             f"{', '.join(entry.variants)}")
    return entry


def assignments(name: str, items: Sequence[str]) -> dict[str, Value]:
    """`--set NAME=VALUE` arguments, each value read by the type of `name`'s parameter."""
    entry = _entry(name, "default")
    valid = ", ".join(s.name for s in entry.specs)
    out: dict[str, Value] = {}
    for item in items:
        key, eq, text = item.partition("=")
        spec = entry.spec(key)
        if not eq or not key:
            raise CatalogueError(f"--set {_typed(item)}: expected NAME=VALUE ({name} takes "
                                 f"{valid})")
        if spec is None:
            raise CatalogueError(f"--set {_typed(key)}: not a parameter of {name} (its "
                                 f"parameters: {valid})")
        if key in out:
            raise CatalogueError(f"--set {key} given twice")
        out[key] = spec.parse(name, text)
    return out


def _typed(text: str) -> str:
    """What the user typed, as typed when it fits a one-line message."""
    return text if text.isprintable() and len(text) <= 40 else brief(text)


def command_args(name: str, variant: str, params: Mapping[str, Value]) -> list[str]:
    """The `crossmod check` arguments that build `params` (a parameter left out: its
    default): the protocol, the variant unless it is the default, every parameter whose
    value is not the variant's default."""
    entry = _entry(name, variant)
    defaults = entry.defaults(variant)
    args = [name, *(["--variant", variant] if variant != "default" else [])]
    for s in entry.specs:
        value = params.get(s.name, defaults[s.name])
        if value != defaults[s.name]:
            args += s.args(value)
    return args
