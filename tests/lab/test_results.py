"""What a guest ships back, read as data: a fixture from a real 6.12 lab run (run here)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from crossmod.cli import main
from crossmod.lab import results, run, tools
from crossmod.lab.results import GuestResult, parse_interrupts

FIX = Path(__file__).parent / "fixtures" / "guest-6.12"


def test_parse_interrupts():
    got = parse_interrupts((FIX / "interrupts-traced-end.txt").read_text())
    assert len(got["CAL"]) == 4 and len(got["LOC"]) == 4
    assert got["ERR"] == [0]
    assert got["0"][0] > 0  # the IO-APIC timer line
    assert parse_interrupts("") == {}


def test_guest_result_from_a_fixture_directory():
    r = GuestResult.read(FIX)
    assert r.release == "6.12.118+deb12-amd64"
    assert r.isolated == (2, 3) and r.nohz_full == (2, 3)
    assert r.skipped == {}
    assert r.work == {"bpf_jit": {"bpf_rounds": 32}, "module": {"module_cycles": 7}}
    assert r.trace_cmd_status == "0"
    assert "csd:csd_queue_cpu" in r.events and "ipi:ipi_send_cpumask" in r.events
    # the fixture's traced deltas (end - start), per isolated CPU
    assert [r.interrupts[k][2:] for k in ("CAL", "RES", "IWI", "LOC")] == \
        [[480, 478], [22, 21], [1, 0], [22, 17]]


def test_skipped_phases_and_missing_files(tmp_path):
    (tmp_path / "skipped.txt").write_text(
        "bpf_nojit the JIT cannot be turned off (CONFIG_BPF_JIT_ALWAYS_ON)\n"
        "module no dummy.ko (kernel given without its package's modules)\n")
    (tmp_path / "isolated.txt").write_text("\n")
    r = GuestResult.read(tmp_path)
    assert r.skipped == {"bpf_nojit": "the JIT cannot be turned off (CONFIG_BPF_JIT_ALWAYS_ON)",
                         "module": "no dummy.ko (kernel given without its package's modules)"}
    assert r.isolated == () and r.interrupts == {} and r.release == ""


def test_unpack_flattens_the_guest_tar(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("out/isolated.txt", b"1\n"), ("out/trace.dat", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    (tmp_path / "g.tar").write_bytes(buf.getvalue())
    results.unpack(tmp_path / "g.tar", tmp_path)
    assert (tmp_path / "isolated.txt").read_text() == "1\n"
    assert (tmp_path / "trace.dat").read_bytes() == b"x"


def test_cross_check_on_the_shared_capture(tmp_path, shared):
    """The shared capture's trace against its own /proc/interrupts snapshots."""
    for name in ("trace.dat", "interrupts-traced-start.txt", "interrupts-traced-end.txt"):
        (tmp_path / name).symlink_to(shared / name)
    (tmp_path / "isolated.txt").write_text("2-3\n")
    r = GuestResult.read(tmp_path)
    rep, text = results.analyse(r.trace, (2, 3))
    assert "phase" in text and rep["phases"]
    agree = {(a.line, a.cpu): (a.trace, a.interrupts) for a in results.cross_check(rep, r)}
    assert set(agree) == {(v, c) for v in results.VECTORS for c in (2, 3)}
    bad = {k: v for k, v in agree.items() if abs(v[0] - v[1]) > results.FUZZ}
    assert not bad, bad


def test_lab_missing_tool_is_one_line(monkeypatch, tmp_path):
    real = tools.shutil.which
    monkeypatch.setattr(tools.shutil, "which",
                        lambda n: None if n == "qemu-system-x86_64" else real(n))
    r = CliRunner().invoke(main, ["lab", "--kernel", __file__, "-o", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert r.output.splitlines()[0].startswith(
        "crossmod: error: qemu-system-x86_64 not found (boots the guest kernel): "
        "apt-get install qemu-system-x86")
    assert len(r.output.splitlines()) == 1


@pytest.mark.parametrize("tool,line", [
    (tools.TRACE_CMD, "trace-cmd not found (records the trace): apt-get install trace-cmd"),
    (tools.QEMU, "qemu-system-x86_64 not found (boots the guest kernel): apt-get install "
                 "qemu-system-x86"),
    (tools.GCC, "gcc not found (compiles the guest's load programs): apt-get install gcc"),
    (tools.LIBC_A, "libc.a not found (links the guest's load programs statically): apt-get "
                   "install libc6-dev"),
    (tools.BUSYBOX, "busybox not found (the guest's shell and tools): apt-get install "
                    "busybox-static"),
    (tools.LDD, "ldd not found (finds trace-cmd's shared libraries for the guest): apt-get "
                "install libc-bin"),
    (tools.DPKG_DEB, "dpkg-deb not found (unpacks the kernel package): apt-get install dpkg"),
    (tools.APT_GET, "apt-get not found (downloads the kernel package): apt-get install apt"),
    (tools.HACKBENCH, "hackbench not found (the hackbench and mixed phases): apt-get install "
                      "rt-tests"),
])
def test_every_missing_tool_message(tool, line):
    assert tool.message() == line


def test_lab_option_errors(tmp_path):
    o = run.LabOptions(kernel="k", isolated=(2, 5), cpus=4, phases=("module",), seconds=1,
                       spin_us=0, seed=1, out=tmp_path)
    with pytest.raises(tools.LabError, match=r"--isolated 2,5: CPU 5 not in a 4-CPU guest"):
        run.check_options(o)
    r = CliRunner().invoke(main, ["lab", "--phases", "bpf,module"])
    assert r.exit_code == 2 and "unknown phase 'bpf'" in r.output
    r = CliRunner().invoke(main, ["lab", "--isolated", "0-1", "--kernel", __file__,
                                  "-o", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert r.output == ("crossmod: error: --isolated 0-1: CPU 0 must stay housekeeping (the "
                        "boot CPU takes the timekeeping)\n")


def test_a_repeat_run_says_how_much_the_counts_moved(tmp_path):
    from crossmod.lab import guest, qemu
    from crossmod.lab.record import Capabilities

    o = run.LabOptions(kernel="k", isolated=(2, 3), cpus=4, phases=("module",), seconds=1,
                       spin_us=0, seed=1, out=tmp_path)
    plan = guest.Plan.make(1, ("module",), 1, 0)
    rep = {"units_by_phase": {"(no phase)": {"ipis_received": 4},
                              "module": {"ipis_received": 110}}}
    lr = run.LabRun(o, qemu.Kernel(tmp_path, "6.12.1", None), Capabilities.for_release((6, 12)),
                    plan, GuestResult.read(FIX), rep, "", [])
    assert lr.repeat_deltas() == []
    lr.previous = {"ipis_received_by_phase": {"module": 100, "gone": 3},
                   "work": {"module": {"module_cycles": 5}}}
    (d,) = lr.repeat_deltas()
    assert (d.phase, d.before, d.now) == ("module", 100, 110)
    assert d.work_now == {"module_cycles": 7}
    assert d.per_unit() == ("module_cycles", 20.0, 110 / 7)
    lr.previous = {"ipis_received_by_phase": {"module": 100}}
    (d,) = lr.repeat_deltas()
    assert d.per_unit() is None  # a lab.json from before work.txt
    assert lr.key() == {"release": "6.12.1", "plan": plan.as_dict(), "isolated": [2, 3],
                        "cpus": 4}
    # as lab.json has it: tuples read back as lists
    import json

    assert lr.repeats({"key": json.loads(json.dumps(lr.key()))})
    other = guest.Plan.make(2, ("module",), 1, 0).as_dict()
    assert not lr.repeats({"key": json.loads(json.dumps(lr.key() | {"plan": other}))})


def test_a_guest_that_stopped_says_why():
    console = ("crossmod-lab: phase module end\n"
               "[   51.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x100\n"
               "[   51.2] reboot: Power down\n")
    assert run.guest_failure(console) == ("the guest kernel says: Kernel panic - not syncing: "
                                          "Attempted to kill init! exitcode=0x100")
    assert run.guest_failure("crossmod-lab: done\n[ 41.2] reboot: Power down\n") is None


def test_lab_help_names_every_phase():
    from crossmod.lab import guest

    r = CliRunner().invoke(main, ["lab", "--help"])
    assert r.exit_code == 0
    listed = [line.split()[0] for line in r.output.split("Phases")[1].split("Options:")[0]
              .splitlines()[1:] if line.strip()]
    assert listed == list(guest.PHASES)
