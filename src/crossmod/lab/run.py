"""One `crossmod lab` run: host checks, kernel, image, boot, results, report — as steps.

Owns: `LabOptions` (the command's parameters as data), `run_lab` (the steps in order,
progress through a callback, everything left in the output directory; returns a
`LabRun`), and the directory's layout (`lab.json` says what was asked and what ran).

The directory: trace.dat, report.txt, report.json, lab.json, console.log, initramfs.cpio.gz
and what the guest shipped (isolated.txt, nohz_full.txt, interrupts-traced-start/end.txt,
dmesg.txt, events.txt, skipped.txt, trace-cmd-record.log, ...). `crossmod trace
DIR/trace.dat --isolated LIST` reads it as any recording.

May import: the standard library, `crossmod.lab.*` and `crossmod.trace`.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from crossmod.lab import guest, initramfs, qemu, results, tools
from crossmod.lab.record import Capabilities, losses, parse_release
from crossmod.lab.tools import LabError
from crossmod.trace.events import format_cpulist

DEFAULT_KERNEL = "linux-image-6.12.118+deb12-amd64-unsigned"


@dataclass(frozen=True)
class LabOptions:
    kernel: str
    isolated: tuple[int, ...]
    cpus: int
    phases: tuple[str, ...]
    seconds: int
    spin_us: int
    seed: int
    out: Path
    timeout: float = 1800.0
    memory_mb: int = 2048


@dataclass(frozen=True)
class Repeat:
    """One phase of a repeated run: IPIs received then and now, and the work done."""

    phase: str
    before: int
    now: int
    work_before: dict[str, int]
    work_now: dict[str, int]

    def per_unit(self) -> tuple[str, float, float] | None:
        """IPIs per unit of work then and now, for the phase's one unit of work."""
        if len(self.work_now) != 1 or self.work_now.keys() != self.work_before.keys():
            return None
        unit = next(iter(self.work_now))
        a, b = self.work_before[unit], self.work_now[unit]
        if not a or not b:
            return None
        return unit, self.before / a, self.now / b


@dataclass
class LabRun:
    """What a run left: the guest's result, the report, timings, the cross-check."""

    options: LabOptions
    kernel: qemu.Kernel
    capabilities: Capabilities
    plan: guest.Plan
    result: results.GuestResult
    report: dict[str, object]
    report_text: str
    agreement: list[results.Agreement]
    seconds: dict[str, float] = field(default_factory=dict)
    #: the lab.json of the run this one repeats (same kernel, plan, CPUs), if DIR had one
    previous: dict[str, object] | None = None

    def key(self) -> dict[str, object]:
        """What makes two runs repeats of each other."""
        return {"release": self.kernel.release, "plan": self.plan.as_dict(),
                "isolated": list(self.options.isolated), "cpus": self.options.cpus}

    def repeats(self, previous: dict[str, object]) -> bool:
        """Whether `previous` (a lab.json, read back) was made with the same key."""
        return previous.get("key") == json.loads(json.dumps(self.key()))

    def repeat_deltas(self) -> list[Repeat]:
        """This run's IPIs received and work done against `previous`, phase by phase."""
        if self.previous is None:
            return []
        old = self.previous.get("ipis_received_by_phase")
        old_work = self.previous.get("work")
        if not isinstance(old, dict):
            return []
        if not isinstance(old_work, dict):
            old_work = {}
        new_work = self.result.work
        return [Repeat(p, int(old[p]), n, dict(old_work.get(p, {})), new_work.get(p, {}))
                for p, n in self.received_by_phase().items() if p in old]

    def received_by_phase(self) -> dict[str, int]:
        by = self.report.get("units_by_phase")
        if not isinstance(by, dict):
            return {}
        return {p: int(u["ipis_received"]) for p, u in by.items()}

    def losses(self) -> list[str]:
        return losses(self.capabilities)


def check_options(o: LabOptions) -> None:
    if o.cpus < 2:
        raise LabError(f"--cpus {o.cpus}: at least 2 (a housekeeping CPU and an isolated one)")
    bad = [c for c in o.isolated if c >= o.cpus]
    if bad:
        raise LabError(f"--isolated {format_cpulist(o.isolated)}: CPU "
                       f"{format_cpulist(bad)} not in a {o.cpus}-CPU guest (--cpus)")
    if 0 in o.isolated:
        raise LabError(f"--isolated {format_cpulist(o.isolated)}: CPU 0 must stay "
                       "housekeeping (the boot CPU takes the timekeeping)")


def housekeeping(o: LabOptions) -> tuple[int, ...]:
    return tuple(c for c in range(o.cpus) if c not in o.isolated)


def host_tools(o: LabOptions) -> list[str]:
    """One line per missing host tool, with its apt-get command."""
    need = list(tools.LAB_TOOLS)
    if not Path(o.kernel).is_file():
        need += [tools.APT_GET, tools.DPKG_DEB]
    return tools.missing(tuple(need))


def run_lab(o: LabOptions, progress: Callable[[str], None]) -> LabRun:
    check_options(o)
    missing = host_tools(o)
    if missing:
        raise LabError(missing[0] + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                                     else ""))
    t0 = time.monotonic()
    timing: dict[str, float] = {}
    o.out.mkdir(parents=True, exist_ok=True)
    previous = _previous(o.out)
    kernel = qemu.fetch_kernel(o.kernel, progress)
    timing["kernel"] = time.monotonic() - t0
    caps = Capabilities.for_release(parse_release(kernel.release))
    plan = guest.Plan.make(o.seed, o.phases, o.seconds, o.spin_us)
    hk = housekeeping(o)
    progress(f"building the guest image for {kernel.release}")
    trace_cmd = tools.TRACE_CMD.found()
    assert trace_cmd is not None  # host_tools
    with tempfile.TemporaryDirectory(prefix="crossmod-lab-") as work:
        entries = initramfs.contents(
            plan, caps, o.isolated, hk, Path(work), busybox=tools.BUSYBOX.path or "",
            trace_cmd=trace_cmd, hackbench=tools.HACKBENCH.found(),
            modules_dir=kernel.modules_dir)
    image = o.out / "initramfs.cpio.gz"
    initramfs.write_image(entries, image)
    timing["image"] = time.monotonic() - t0 - timing["kernel"]
    tar = o.out / "guest.tar"
    tar.unlink(missing_ok=True)
    argv = qemu.qemu_argv(kernel.vmlinuz, image, tar, qemu.kernel_cmdline(o.isolated, hk),
                          cpus=o.cpus, memory_mb=o.memory_mb)
    (o.out / "qemu.sh").write_text(" ".join(argv) + "\n")
    t_boot = time.monotonic()
    rc = qemu.boot(argv, o.out / "console.log", progress, o.timeout)
    timing["guest"] = time.monotonic() - t_boot
    if rc == 124:
        raise LabError(f"the guest did not power off within {o.timeout:.0f} s "
                       f"(console: {o.out / 'console.log'})")
    if not tar.exists() or tar.stat().st_size == 0:
        why = guest_failure((o.out / "console.log").read_text(errors="replace"))
        raise LabError(f"the guest shipped no results (QEMU exit {rc}"
                       f"{'; ' + why if why else ''}; console: {o.out / 'console.log'})")
    results.unpack(tar, o.out)
    res = results.GuestResult.read(o.out)
    if not res.trace.exists():
        raise LabError(f"the guest recorded no trace.dat (trace-cmd: "
                       f"{o.out / 'trace-cmd-record.log'})")
    found = Capabilities.from_names(res.events, parse_release(kernel.release))
    if res.events and found != caps:
        progress(f"the guest kernel's events differ from what {kernel.release} should have: "
                 f"{found}")
        caps = found  # the losses said are the kernel's real ones
    progress("analysing the trace")
    rep, text = results.analyse(res.trace, o.isolated)
    agreement = results.cross_check(rep, res)
    timing["total"] = time.monotonic() - t0
    run = LabRun(o, kernel, caps, plan, res, rep, text, agreement, timing)
    if previous is not None and run.repeats(previous):
        run.previous = previous
    _write(run)
    return run


_FAILURE = ("Kernel panic", "BUG:", "Oops:", "general protection fault",
            "Out of memory", "watchdog: BUG")


def guest_failure(console: str) -> str | None:
    """The guest kernel's first line that says why it stopped, or None."""
    for line in console.splitlines():
        for mark in _FAILURE:
            at = line.find(mark)
            if at >= 0:
                return "the guest kernel says: " + line[at:].strip()[:160]
    return None


def _previous(out: Path) -> dict[str, object] | None:
    try:
        meta = json.loads((out / "lab.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _write(run: LabRun) -> None:
    o = run.options
    (o.out / "report.txt").write_text(run.report_text)
    (o.out / "report.json").write_text(json.dumps(run.report, indent=1))
    meta = {
        "kernel": {"spec": o.kernel, "vmlinuz": str(run.kernel.vmlinuz),
                   "release": run.kernel.release},
        "options": {k: (str(v) if isinstance(v, Path) else v)
                    for k, v in asdict(o).items()},
        "capabilities": asdict(run.capabilities),
        "lost": run.losses(),
        "plan": run.plan.as_dict(),
        "guest": {"isolated": list(run.result.isolated),
                  "nohz_full": list(run.result.nohz_full),
                  "skipped": run.result.skipped,
                  "trace_cmd_status": run.result.trace_cmd_status},
        "interrupts_vs_trace": [asdict(a) | {"ok": a.ok} for a in run.agreement],
        "seconds": {k: round(v, 1) for k, v in run.seconds.items()},
        "key": run.key(),
        "ipis_received_by_phase": run.received_by_phase(),
        "work": run.result.work,
    }
    (o.out / "lab.json").write_text(json.dumps(meta, indent=1) + "\n")

