"""`crossmod record`: the trace-cmd line for every capability set, detection, messages."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from click.testing import CliRunner

from crossmod.cli import main
from crossmod.lab import record
from crossmod.lab.record import Capabilities, losses, trace_cmd_argv

FULL = Capabilities(ipi_send=True, csd=True, cpus_filter=True, irq_vectors=True,
                    context_tracking=True)


def _events(argv: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """event -> (its -f filter, its -R trigger), from an argument list."""
    out: dict[str, tuple[str | None, str | None]] = {}
    k = 0
    while k < len(argv):
        if argv[k] == "-e":
            name = argv[k + 1]
            filt = trig = None
            k += 2
            while k < len(argv) and argv[k] in ("-f", "-R"):
                if argv[k] == "-f":
                    filt = argv[k + 1]
                else:
                    trig = argv[k + 1]
                k += 2
            out[name] = (filt, trig)
        else:
            k += 1
    return out


def test_full_612_line_is_seed_002s_plus_the_receiving_side():
    argv = trace_cmd_argv(FULL, (2, 3), "trace.dat")
    assert argv[:6] == ["record", "-q", "-o", "trace.dat", "-b", "16384"]
    ev = _events(argv)
    assert ev == {
        "csd:csd_queue_cpu": ("cpu & CPUS{2-3}", "stacktrace if cpu & CPUS{2-3}"),
        "ipi:ipi_send_cpumask": ("cpumask & CPUS{2-3}", "stacktrace if cpumask & CPUS{2-3}"),
        "ipi:ipi_send_cpu": ("cpu & CPUS{2-3}", "stacktrace if cpu & CPUS{2-3}"),
        "csd:csd_function_entry": ("CPU & CPUS{2-3}", None),
        "csd:csd_function_exit": ("CPU & CPUS{2-3}", None),
        "irq_vectors:call_function_entry": ("CPU & CPUS{2-3}", None),
        "irq_vectors:call_function_single_entry": ("CPU & CPUS{2-3}", None),
        "irq_vectors:reschedule_entry": ("CPU & CPUS{2-3}", None),
        "irq_vectors:irq_work_entry": ("CPU & CPUS{2-3}", None),
        "irq_vectors:local_timer_entry": ("CPU & CPUS{2-3}", None),
        "tlb:tlb_flush": ("CPU & CPUS{2-3}", None),
        "context_tracking:user_enter": ("CPU & CPUS{2-3}", None),
        "context_tracking:user_exit": ("CPU & CPUS{2-3}", None),
    }
    # the shared capture's own line, event for event (its README)
    assert list(ev)[:3] == ["csd:csd_queue_cpu", "ipi:ipi_send_cpumask", "ipi:ipi_send_cpu"]


def test_64_65_without_cpus_filter_spells_the_cpus_and_stacks_every_cpumask_send():
    caps = Capabilities.for_release((6, 5))
    assert caps == Capabilities(ipi_send=True, csd=False, cpus_filter=False,
                                irq_vectors=True, context_tracking=True)
    ev = _events(trace_cmd_argv(caps, (1, 4), "t.dat"))
    assert ev["ipi:ipi_send_cpu"] == ("cpu == 1 || cpu == 4",
                                      "stacktrace if cpu == 1 || cpu == 4")
    assert ev["ipi:ipi_send_cpumask"] == (None, "stacktrace")
    assert ev["irq_vectors:reschedule_entry"] == ("CPU == 1 || CPU == 4", None)
    assert not any(e.startswith("csd:") for e in ev)


def test_61_records_only_the_receiving_side():
    caps = Capabilities.for_release((6, 1))
    ev = _events(trace_cmd_argv(caps, (2, 3), "t.dat"))
    assert sorted(ev) == sorted([
        "irq_vectors:call_function_entry", "irq_vectors:call_function_single_entry",
        "irq_vectors:reschedule_entry", "irq_vectors:irq_work_entry",
        "irq_vectors:local_timer_entry", "tlb:tlb_flush", "context_tracking:user_enter",
        "context_tracking:user_exit"])
    assert all(f == ("CPU == 2 || CPU == 3", None) for f in ev.values())


@pytest.mark.parametrize("bits", list(itertools.product([False, True], repeat=6)))
def test_every_capability_set_gives_a_line_with_exactly_its_events(bits):
    caps = Capabilities(*bits)
    if not (caps.ipi_send or caps.csd or caps.irq_vectors or caps.tlb
            or caps.context_tracking):
        with pytest.raises(ValueError):
            record.armed_filter(trace_cmd_argv(caps, (2,), "t.dat"))
        return
    ev = _events(trace_cmd_argv(caps, (2,), "t.dat"))
    assert ("ipi:ipi_send_cpu" in ev) == caps.ipi_send
    assert ("csd:csd_queue_cpu" in ev) == caps.csd
    assert ("irq_vectors:call_function_entry" in ev) == caps.irq_vectors
    assert ("tlb:tlb_flush" in ev) == caps.tlb
    assert ("context_tracking:user_exit" in ev) == caps.context_tracking
    mark = "CPUS{2}" if caps.cpus_filter else "== 2"
    for name, (filt, trig) in ev.items():
        if name == "ipi:ipi_send_cpumask" and not caps.cpus_filter:
            assert (filt, trig) == (None, "stacktrace")
            continue
        assert filt is not None and mark in filt, (name, filt)
        assert (trig is not None) == (name in ("csd:csd_queue_cpu", "ipi:ipi_send_cpu",
                                               "ipi:ipi_send_cpumask")), name
    # each set is said: one loss line per missing capability
    assert len(losses(caps)) == bits.count(False)
    # the guest waits on the first filtered event's filter file
    first = next(n for n, (f, _) in ev.items() if f)
    assert record.armed_filter(trace_cmd_argv(caps, (2,), "t.dat")) == \
        "events/" + first.replace(":", "/") + "/filter"


def test_release_gates():
    assert Capabilities.for_release((6, 3)).ipi_send is False
    assert Capabilities.for_release((6, 4)).ipi_send is True
    assert Capabilities.for_release((6, 5)).csd is False
    assert Capabilities.for_release((6, 6)) == FULL
    assert record.parse_release("6.12.118+deb12-amd64") == (6, 12)
    with pytest.raises(ValueError):
        record.parse_release("vmlinuz")


def _tracefs(tmp: Path, names: list[str]) -> Path:
    for n in names:
        s, e = n.split(":")
        (tmp / "events" / s / e).mkdir(parents=True)
    return tmp / "events"


def test_detect_from_tracefs_events(tmp_path):
    ev = _tracefs(tmp_path, ["ipi:ipi_send_cpu", "ipi:ipi_send_cpumask",
                             "irq_vectors:call_function_entry",
                             "irq_vectors:call_function_single_entry",
                             "irq_vectors:reschedule_entry", "irq_vectors:irq_work_entry",
                             "irq_vectors:local_timer_entry", "tlb:tlb_flush"])
    caps = Capabilities.detect(ev, (6, 4))
    assert caps == Capabilities(ipi_send=True, csd=False, cpus_filter=False,
                                irq_vectors=True, context_tracking=False, tlb=True)
    assert Capabilities.from_names(
        ["ipi:ipi_send_cpu", "ipi:ipi_send_cpumask", "tlb:tlb_flush"], (6, 12)) == \
        Capabilities(ipi_send=True, csd=False, cpus_filter=True, irq_vectors=False,
                     context_tracking=False, tlb=True)


def test_missing_event_messages_say_what_is_lost():
    none = Capabilities(False, False, False, False, False, False)
    assert losses(none) == [
        "no ipi:ipi_send_cpu/ipi_send_cpumask (kernel < 6.4): no sender side; the report "
        "counts IPIs received on the isolated CPUs by vector, but not who sent them, from "
        "which stack, nor what deferral would remove",
        "no csd:csd_queue_cpu/csd_function_entry/exit (kernel < 6.6): no callback names; "
        "IPIs are attributed by their sender's stack only",
        "no CPUS{} filter (kernel < 6.6): the isolated CPUs are filtered as 'CPU == N || "
        "...' (the same events, a longer filter)",
        "no irq_vectors:* events: no receiving side; the IPIs taken on the isolated CPUs "
        "and the handlers' time are not counted",
        "no context_tracking:user_enter/user_exit: the isolated CPUs' mode (user or kernel) "
        "when an IPI was sent is unknown; what deferral would remove is counted as if they "
        "were in user space",
        "no tlb:tlb_flush: TLB flushes on the isolated CPUs are not shown",
    ]
    assert losses(FULL) == []
    assert losses(Capabilities.for_release((6, 5))) == [
        "no csd:csd_queue_cpu/csd_function_entry/exit (kernel < 6.6): no callback names; "
        "IPIs are attributed by their sender's stack only",
        "no CPUS{} filter (kernel < 6.6): targets are filtered as 'cpu == N || ...'; "
        "ipi_send_cpumask cannot be filtered, so every one is recorded with a stack (a "
        "bigger trace, more overhead on the housekeeping CPUs)"]


def test_preflight_messages():
    assert record.preflight(euid=1000, tracefs="/t", trace_cmd="/usr/bin/trace-cmd") == \
        "crossmod record needs root (tracefs and trace-cmd record): run it with sudo"
    assert record.preflight(euid=0, tracefs=None, trace_cmd="/usr/bin/trace-cmd") == (
        "no tracefs: neither /sys/kernel/tracing nor /sys/kernel/debug/tracing has events/ "
        "(mount -t tracefs nodev /sys/kernel/tracing; kernel needs CONFIG_FTRACE)")
    assert record.preflight(euid=0, tracefs="/t", trace_cmd=None) == \
        "trace-cmd not found (records the trace): apt-get install trace-cmd"
    assert record.preflight(euid=0, tracefs="/t", trace_cmd="/usr/bin/trace-cmd") is None


def test_declared_isolated_joins_isolcpus_and_nohz_full(tmp_path):
    (tmp_path / "isolated").write_text("2-3\n")
    (tmp_path / "nohz_full").write_text("3,5\n")
    assert record.declared_isolated(tmp_path) == (2, 3, 5)
    (tmp_path / "isolated").write_text("\n")
    (tmp_path / "nohz_full").write_text("(null)\n")
    assert record.declared_isolated(tmp_path) == ()


@pytest.mark.parametrize("line,current,writes,after", [
    ("PHASE load start\n", None, ["PHASE load start"], "load"),
    ("PHASE load end", "load", ["PHASE load end"], None),
    ("PHASE b", "a", ["PHASE a end", "PHASE b start"], "b"),
    ("PHASE b", None, ["PHASE b start"], "b"),
    ("PHASE end", "b", ["PHASE b end"], None),
    ("PHASE", None, [], None),
    ("hello PHASE x", "a", [], "a"),
    ("PHASE x start 2 s", None, ["PHASE x start 2 s"], "x"),
])
def test_phase_lines_become_markers(line, current, writes, after):
    assert record.phase_marker(line, current) == (writes, after)


def test_record_cli_errors_are_one_line(monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    r = CliRunner().invoke(main, ["record", "--", "true"])
    assert r.exit_code == 2
    assert r.output == ("crossmod: error: crossmod record needs root (tracefs and trace-cmd "
                        "record): run it with sudo\n")
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr(record, "find_tracefs", lambda: "/sys/kernel/tracing")
    monkeypatch.setattr("crossmod.lab.tools.shutil.which", lambda _name: None)
    r = CliRunner().invoke(main, ["record", "--", "true"])
    assert r.exit_code == 2
    assert r.output == ("crossmod: error: trace-cmd not found (records the trace): "
                        "apt-get install trace-cmd\n")


def test_record_dry_run_prints_the_line(monkeypatch, tmp_path):
    monkeypatch.setattr(record, "find_tracefs", lambda: None)
    monkeypatch.setattr("platform.release", lambda: "6.1.0-57-amd64")
    r = CliRunner().invoke(main, ["record", "--dry-run", "--isolated", "3", "-o", "x.dat"])
    assert r.exit_code == 0
    line = r.output.splitlines()[0]
    assert line.startswith("trace-cmd record -q -o x.dat -b 16384 -e "
                           "irq_vectors:call_function_entry -f 'CPU == 3' ")
    assert "warning: no ipi:ipi_send_cpu/ipi_send_cpumask (kernel < 6.4)" in r.output


FAKE_TRACE_CMD = r"""#!/bin/sh
# a stand-in for trace-cmd record: arms (adds its pid to the first filter), records until
# SIGINT, then writes its output file
[ "$1 $2 $3" = "record -q -o" ] || exit 9
T=$FAKE_TRACEFS; OUT=$4; FILTER=$FAKE_FILTER
trap 'echo recorded > "$OUT"; exit 0' INT
sleep 0.3
echo "(cpu & CPUS{2-3}) && (common_pid != $$)" > "$T/$FILTER"
while :; do sleep 0.05; done
"""


def test_run_waits_for_trace_cmd_and_copies_phase_lines(tmp_path):
    tracefs = tmp_path / "tracing"
    argv_line = trace_cmd_argv(FULL, (2, 3), str(tmp_path / "t.dat"))
    filt = record.armed_filter(argv_line)
    (tracefs / filt).parent.mkdir(parents=True)
    (tracefs / filt).write_text("cpu & CPUS{2-3}\n")
    (tracefs / "trace_marker").write_text("")
    fake = tmp_path / "trace-cmd"
    fake.write_text(FAKE_TRACE_CMD)
    fake.chmod(0o755)
    marker_log: list[str] = []
    real_write = Path.write_text

    def write_text(self: Path, data: str, *a: object, **k: object) -> int:
        if self.name == "trace_marker":
            marker_log.append(data)
        return real_write(self, data, *a, **k)  # type: ignore[arg-type]

    echoed: list[str] = []
    cmd = ["sh", "-c", f"grep -q common_pid {tracefs / filt} && echo armed; "
           "echo PHASE load start; echo work; echo PHASE next; echo bye"]
    mp = pytest.MonkeyPatch()
    mp.setenv("FAKE_TRACEFS", str(tracefs))
    mp.setenv("FAKE_FILTER", filt)
    mp.setattr(Path, "write_text", write_text)
    try:
        trc, rc = record.run([str(fake), *argv_line], cmd, str(tracefs), echoed.append)
    finally:
        mp.undo()
    assert (trc, rc) == (0, 0)
    # the command ran only once trace-cmd had armed
    assert echoed == ["armed", "PHASE load start", "work", "PHASE next", "bye"]
    assert marker_log == ["PHASE load start\n", "PHASE load end\n", "PHASE next start\n",
                          "PHASE next end\n"]
    assert (tmp_path / "t.dat").read_text() == "recorded\n"


def test_run_does_not_start_the_command_when_trace_cmd_fails(tmp_path):
    fake = tmp_path / "trace-cmd"
    fake.write_text("#!/bin/sh\necho '  Can'\"'\"'t enable ftrace' >&2\nexit 1\n")
    fake.chmod(0o755)
    (tmp_path / "events/csd/csd_queue_cpu").mkdir(parents=True)
    ran = tmp_path / "ran"
    trc, rc = record.run([str(fake), *trace_cmd_argv(FULL, (2,), "t.dat")],
                         ["touch", str(ran)], str(tmp_path), lambda _l: None)
    assert (trc, rc) == (1, 0) and not ran.exists()


def test_record_without_any_isolated_cpu_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(record, "find_tracefs", lambda: None)
    monkeypatch.setattr(record, "declared_isolated", lambda *a: ())
    r = CliRunner().invoke(main, ["record", "--dry-run"])
    assert r.exit_code == 2
    assert r.output == ("crossmod: error: no isolated CPU: /sys/devices/system/cpu/isolated "
                        "and nohz_full are empty; give --isolated CPULIST\n")
