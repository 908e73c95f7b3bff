"""Scenario files (TOML, read with tomllib): the machine, the kernel profile (which
housekeeping operation sends which IPIs to whom), the workload and the cost model.

Owns: `Scenario`, `Operation`, `Ipi`, `PROFILE` (the built-in kernel profile, each
operation in the kernel's words), `load(name_or_path)` and `ScenarioError` (what is wrong
and where). Imports: simulate.costs, trace.events (cpulists).

File layout::

    [scenario]  name, description, hours
    [machine]   cpus, isolated (cpulist), housekeeping (cpulist; default: the others), pti
    [workload]  syscall_hz (each isolated CPU; 0 = a pure userspace loop), tick_hz (the
                residual tick), nmi_per_hour
    [operations] name = arrivals per hour on the housekeeping CPUs (Poisson), for names of
                `PROFILE` or of an [[operation]] defined in the file
    [[operation]] name, what, ipis = [{callback, rounds, targets = "all"|"one", deferrable}]
    [costs]     any `CostModel` field
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from crossmod.simulate.costs import CostModel
from crossmod.trace.events import parse_cpulist


class ScenarioError(Exception):
    """A scenario that cannot be run: `where` (file and key), `what`."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where, self.what = where, what


@dataclass(frozen=True)
class Ipi:
    """One `smp_call_function_many_cond` an operation makes: `callback` to `targets`
    ("all" isolated CPUs, as on_each_cpu; "one": a single isolated CPU), `rounds` times
    back to back (the int3 batch's three syncs). `deferrable`: None = as the policy says
    for the callback; False = a call site the series did not convert (pcpu_balance_work)."""

    callback: str
    rounds: int = 1
    targets: str = "all"
    deferrable: bool | None = None


@dataclass(frozen=True)
class Operation:
    name: str
    what: str
    ipis: tuple[Ipi, ...]


def _op(name: str, what: str, *ipis: Ipi) -> Operation:
    return Operation(name, what, ipis)


# The built-in kernel profile (KERNEL.md B.4, E.3, F.3, F.6; the cover letters' stacks;
# the QEMU recording's `by_stack`).
PROFILE: dict[str, Operation] = {o.name: o for o in (
    _op("tracepoint_flip", "tracepoint enable/disable -> static_call/static key update -> "
        "one int3 batch: smp_text_poke_batch_finish's three text_poke_sync rounds",
        Ipi("do_sync_core", rounds=3)),
    _op("cbpf_attach_nojit", "sk_attach_filter with the JIT off -> bpf_prog_select_runtime "
        "-> set_memory_ro -> change_page_attr_set_clr: do_flush_tlb_all, then "
        "_vm_unmap_aliases -> __purge_vmap_area_lazy: do_kernel_range_flush",
        Ipi("do_flush_tlb_all"), Ipi("do_kernel_range_flush")),
    _op("module_load", "load_module: static_call/jump_label updates of the module's sites "
        "(int3 batch) and module_enable_rodata_ro -> set_memory_* (do_flush_tlb_all)",
        Ipi("do_sync_core", rounds=3), Ipi("do_flush_tlb_all")),
    _op("module_unload", "free_module -> vfree of the module's memory -> lazy purge",
        Ipi("do_kernel_range_flush")),
    _op("vmap_purge", "vfree -> lazy vmap purge once lazy_max_pages is reached: "
        "__purge_vmap_area_lazy -> flush_tlb_kernel_range", Ipi("do_kernel_range_flush")),
    _op("kprobe", "kprobe enable/disable -> ftrace code update (int3 batch) and "
        "ftrace_sync_ipi", Ipi("do_sync_core", rounds=3), Ipi("ftrace_sync_ipi")),
    _op("dl_server_timer", "deadline-server timer: dl_task_timer -> resched_curr (reschedule "
        "IPI) and tick_nohz_dep_set_cpu -> irq_work nohz_full_kick_func",
        Ipi("reschedule", targets="one"), Ipi("nohz_full_kick_func", targets="one")),
    _op("tlb_remove_table", "tlb_remove_table_smp_sync (mmu_gather freeing page-table "
        "pages: not deferrable, F.6)", Ipi("tlb_remove_table_smp_sync")),
    _op("pcpu_balance_work", "pcpu_balance_workfn -> pcpu_reclaim_populated -> "
        "flush_tlb_kernel_range, a call site the series did not convert",
        Ipi("do_flush_tlb_all", deferrable=False)),
    _op("expedited_rcu", "synchronize_rcu_expedited -> rcu_exp_handler on each CPU",
        Ipi("rcu_exp_handler")),
)}


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    hours: float
    cpus: int
    isolated: tuple[int, ...]
    housekeeping: tuple[int, ...]
    pti: bool
    syscall_hz: float
    tick_hz: float
    nmi_per_hour: float
    rates: tuple[tuple[str, float], ...]
    profile: dict[str, Operation] = field(default_factory=lambda: dict(PROFILE))
    costs: CostModel = field(default_factory=CostModel)
    path: str = ""


def builtin_names() -> list[str]:
    root = resources.files("crossmod.simulate") / "scenarios"
    return sorted(p.name.removesuffix(".toml") for p in root.iterdir()
                  if p.name.endswith(".toml"))


def load(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a TOML file."""
    if name_or_path in builtin_names():
        res = resources.files("crossmod.simulate") / "scenarios" / f"{name_or_path}.toml"
        return parse(res.read_text(), name_or_path)
    path = Path(name_or_path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ScenarioError(name_or_path, f"not a built-in scenario "
                            f"({', '.join(builtin_names())}) and unreadable: "
                            f"{e.strerror}") from None
    return parse(text, name_or_path)


def _get(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str,
         default: Any = None) -> Any:
    if key not in table:
        if default is None:
            raise ScenarioError(f"{where}.{key}", "missing")
        return default
    v = table[key]
    if isinstance(v, bool) and kind is not bool and bool not in (
            kind if isinstance(kind, tuple) else (kind,)):
        raise ScenarioError(f"{where}.{key}", f"expected a number, got {v!r}")
    if not isinstance(v, kind):
        raise ScenarioError(f"{where}.{key}", f"expected {getattr(kind, '__name__', kind)}, "
                            f"got {v!r}")
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
        raise ScenarioError(f"{where}.{key}", f"must be >= 0, got {v!r}")
    return v


def _cpus(table: dict[str, Any], key: str, where: str, ncpus: int) -> tuple[int, ...]:
    text = _get(table, key, str, where)
    try:
        cpus = parse_cpulist(text)
    except ValueError as e:
        raise ScenarioError(f"{where}.{key}", str(e)) from None
    bad = [c for c in cpus if c >= ncpus]
    if bad:
        raise ScenarioError(f"{where}.{key}", f"CPU {bad[0]} >= cpus ({ncpus})")
    return cpus


def parse(text: str, where: str) -> Scenario:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(where, f"not TOML: {e}") from None
    known = {"scenario", "machine", "workload", "operations", "operation", "costs"}
    for key in doc:
        if key not in known:
            raise ScenarioError(f"{where}: [{key}]", f"unknown table (known: "
                                f"{', '.join(sorted(known))})")
    sc = doc.get("scenario", {})
    m = doc.get("machine")
    if m is None:
        raise ScenarioError(where, "no [machine] table")
    ncpus = _get(m, "cpus", int, f"{where}: machine")
    if ncpus < 2:
        raise ScenarioError(f"{where}: machine.cpus", "needs at least 2 CPUs")
    iso = _cpus(m, "isolated", f"{where}: machine", ncpus)
    hk = (_cpus(m, "housekeeping", f"{where}: machine", ncpus) if "housekeeping" in m
          else tuple(c for c in range(ncpus) if c not in iso))
    if set(iso) & set(hk):
        raise ScenarioError(f"{where}: machine", "a CPU is both isolated and housekeeping")
    if not iso or not hk:
        raise ScenarioError(f"{where}: machine", "needs isolated and housekeeping CPUs")
    w = doc.get("workload", {})
    wh = f"{where}: workload"
    profile = dict(PROFILE)
    for i, o in enumerate(doc.get("operation", [])):
        ow = f"{where}: operation[{i}]"
        ipis = []
        for j, ipi in enumerate(_get(o, "ipis", list, ow)):
            iw = f"{ow}.ipis[{j}]"
            targets = _get(ipi, "targets", str, iw, "all")
            if targets not in ("all", "one"):
                raise ScenarioError(f"{iw}.targets", f"'all' or 'one', got {targets!r}")
            ipis.append(Ipi(_get(ipi, "callback", str, iw), _get(ipi, "rounds", int, iw, 1),
                            targets, ipi.get("deferrable")))
        name = _get(o, "name", str, ow)
        profile[name] = Operation(name, _get(o, "what", str, ow, name), tuple(ipis))
    rates = []
    for name, rate in doc.get("operations", {}).items():
        if name not in profile:
            raise ScenarioError(f"{where}: operations.{name}",
                                f"unknown operation (known: {', '.join(sorted(profile))})")
        rates.append((name, float(_get({name: rate}, name, (int, float),
                                        f"{where}: operations"))))
    cost_table = doc.get("costs", {})
    costs = CostModel()
    for key in cost_table:
        if key not in CostModel.names():
            raise ScenarioError(f"{where}: costs.{key}", "unknown cost (known: "
                                f"{', '.join(sorted(CostModel.names()))})")
        costs = replace(costs, **{key: float(_get(cost_table, key, (int, float),
                                                  f"{where}: costs"))})
    return Scenario(
        name=_get(sc, "name", str, f"{where}: scenario", Path(where).stem),
        description=_get(sc, "description", str, f"{where}: scenario", ""),
        hours=float(_get(sc, "hours", (int, float), f"{where}: scenario", 1.0)),
        cpus=ncpus, isolated=iso, housekeeping=hk,
        pti=bool(_get(m, "pti", bool, f"{where}: machine", True)),
        syscall_hz=float(_get(w, "syscall_hz", (int, float), wh, 0.0)),
        tick_hz=float(_get(w, "tick_hz", (int, float), wh, 1.0)),
        nmi_per_hour=float(_get(w, "nmi_per_hour", (int, float), wh, 0.0)),
        rates=tuple(rates), profile=profile, costs=costs, path=where)


def cost_fields() -> list[str]:
    return [f.name for f in fields(CostModel)]
