"""The kernel's arm64 patching sequences as litmus tests (examples/litmus), cross-checked
against the catalogue rows that model the same code on crossmod's kernel-level machine:
an Allowed stale fetch (or a CMODX flag) where the row finds a violation, Forbidden and
unflagged where the row is safe -- for every CTR_EL0 setting caches_clean_inval_pou()
has an alternative for."""

from __future__ import annotations

import pytest

from crossmod.catalogue import build
from crossmod.check.explore import explore
from crossmod.litmus.parse import parse_file
from crossmod.litmus.run import check

from .conftest import KERNEL

# litmus test -> (its verdict and flag under Arm's model, the row, the row's verdict)
CROSS = {
    "kernel.jump-label.nosync": ("Allowed", False, ("arm64-jump-label", "nosync", {}),
                                 "violation"),
    "kernel.jump-label.kick": ("Forbidden", False, ("arm64-jump-label", "default", {}),
                               "safe"),
    "kernel.stop_machine.last-master": ("Forbidden", False, (
        "arm64-stop-machine", "default", {"patch": "jump-label"}), "safe"),
    "kernel.stop_machine.kprobe.last-master": ("Forbidden", False, (
        "arm64-stop-machine", "default", {}), "safe"),
    "kernel.stop_machine.kprobe.first-master": ("Allowed", True, (
        "arm64-stop-machine", "first-master", {}), "violation"),
}


@pytest.mark.parametrize("name", sorted(CROSS))
@pytest.mark.parametrize("cache", ["", "IDC1.", "DIC1."])
def test_kernel_litmus_agrees_with_its_row(name, cache):
    path = KERNEL / f"{cache}{name}.litmus"
    if not path.exists():
        pytest.skip(f"{path.name}: the kprobe sequences are written for DIC=0 IDC=0 only")
    verdict, flagged, (protocol, variant, knobs), row = CROSS[name]
    r = check(parse_file(path))
    assert (r.verdict, bool(r.flags)) == (verdict, flagged)
    assert explore(build(protocol, variant, **knobs)).verdict == row


@pytest.mark.parametrize("cache", ["", "IDC1.", "DIC1."])
def test_the_non_masters_isb_is_what_makes_stop_machine_safe(cache):
    """Without the isb() after the spin in aarch64_insn_patch_text_cb(), CPU 1 may run the
    old instruction after it saw the master's release."""
    assert check(parse_file(KERNEL / f"{cache}kernel.stop_machine.no-isb.litmus")).verdict \
        == "Allowed"


def test_the_earlier_reading_agrees_on_the_kernels_sequences():
    """crossmod's earlier arm64 reading (--fetch cse) and Arm's model give the kernel's
    sequences the same verdicts: the rows' findings do not depend on where the two
    readings differ."""
    for path in sorted(KERNEL.glob("*.litmus")):
        t = parse_file(path)
        assert check(t, fetch="cse").verdict == check(t).verdict, path.name
