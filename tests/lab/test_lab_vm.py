"""The opt-in lab test: `crossmod lab` boots a current Debian 6.12 kernel under QEMU.

Off by default (marker ``lab``); run it with ``CROSSMOD_LAB=1 pytest -m lab tests/lab``.
It needs apt with network access (``apt-get download`` of the kernel package, cached in
$CROSSMOD_LAB_CACHE or ~/.cache/crossmod/lab) and the host tools of README's lab section.
About a minute on a 2-core machine (61 s here, 71 s on a busy machine; README).
"""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from crossmod.cli import main
from crossmod.lab import results, run

KERNEL = os.environ.get("CROSSMOD_LAB_KERNEL", run.DEFAULT_KERNEL)


@pytest.mark.lab
def test_lab_on_debian_612_two_phases(tmp_path):
    out = tmp_path / "lab"
    r = CliRunner().invoke(main, ["lab", "--kernel", KERNEL, "--isolated", "2-3", "--cpus",
                                  "4", "--phases", "bpf_jit,module", "--seconds", "8",
                                  "--seed", "3", "-o", str(out)])
    assert r.exit_code == 0, r.output
    # the guest's own /sys/devices/system/cpu/isolated (and nohz_full)
    assert (out / "isolated.txt").read_text().strip() == "2-3"
    assert (out / "nohz_full.txt").read_text().strip() == "2-3"
    rep = json.loads((out / "report.json").read_text())
    assert [p["name"] for p in rep["phases"]] == ["bpf_jit", "module"]
    assert not any("no start marker" in p.get("note", "") for p in rep["phases"])
    for cpu in ("2", "3"):
        c = rep["cpus"][cpu]
        # IPIs aimed at them, with stacks (module loading patches text: do_sync_core)
        assert c["aimed"] > 50, c["aimed"]
        assert c["by_stack"] and sum(n for _s, n in c["by_stack"]) > 50
        assert any(cb == "do_sync_core" for cb, _n in c["by_callback"])
    # the receiving side agrees with the guest's /proc/interrupts within the capture fuzz
    res = results.GuestResult.read(out)
    agree = results.cross_check(rep, res)
    assert len(agree) == 8
    assert all(a.ok for a in agree), [a for a in agree if not a.ok]
    assert sum(a.interrupts for a in agree if a.line == "CAL") > 100
    # the directory is a recording `crossmod trace` reads as is
    again = CliRunner().invoke(main, ["trace", str(out / "trace.dat"), "--isolated", "2-3",
                                      "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["total_aimed"] == rep["total_aimed"]
    profile = tmp_path / "profile.toml"
    prof = CliRunner().invoke(main, ["trace", str(out / "trace.dat"), "--isolated", "2-3",
                                     "--profile", str(profile)])
    assert prof.exit_code == 0, prof.output
    assert "[[operation]]" in profile.read_text()
    sim = CliRunner().invoke(main, ["simulate", "--replay", str(out / "trace.dat"),
                                    "--isolated", "2-3", "--policy", "none", "--json"])
    assert sim.exit_code == 0, sim.output
