"""The kernel's arm64 text patching, as litmus tests, on Arm's model of instruction fetch.

Each sequence of examples/litmus/ -- a jump label patched with
aarch64_insn_patch_text_nosync() and nothing else (f6cc0c501649), then with
kick_all_cpus_sync() (2024), and aarch64_insn_patch_text()'s stop_machine() callback -- for
each CTR_EL0 setting the kernel's cache maintenance has an alternative for, next to the
catalogue row that models the same code on the kernel-level machine.

Run: python examples/arm64_litmus.py   (the same as `crossmod litmus examples/litmus`)
"""

from __future__ import annotations

from pathlib import Path

from crossmod.catalogue import build
from crossmod.check.explore import explore
from crossmod.litmus.parse import parse_file
from crossmod.litmus.run import check
from crossmod.report.tables import table

HERE = Path(__file__).resolve().parent / "litmus"
ROWS = {
    "jump-label.nosync": ("arm64-jump-label", "nosync", {}),
    "jump-label.kick": ("arm64-jump-label", "default", {}),
    "stop_machine.last-master": ("arm64-stop-machine", "default", {"patch": "jump-label"}),
    "stop_machine.kprobe.last-master": ("arm64-stop-machine", "default", {}),
    "stop_machine.kprobe.first-master": ("arm64-stop-machine", "first-master", {}),
}


def main() -> None:
    rows, verdicts = [], {}
    for path in sorted(HERE.glob("*.litmus")):
        r = check(parse_file(path))
        key = path.stem.split("kernel.", 1)[1]
        row = ROWS.get(key)
        if row is not None and key not in verdicts:
            v = explore(build(row[0], row[1], **row[2]))
            verdicts[key] = f"{v.verdict} ({v.property})" if v.property else v.verdict
        knobs = "".join(f" {k}={v}" for k, v in row[2].items()) if row else ""
        rows.append((r.test.replace("kernel.", ""), r.verdict, "CMODX" if r.flags else "-",
                     f"{row[0]} {row[1]}{knobs}" if row else "-"))
    print("(IDC1. / DIC1.: CacheType=IDC / DIC, caches_clean_inval_pou()'s alternatives)")
    print(table(("litmus test", "verdict", "flag", "the row that models it"), rows))
    print("\nthe rows (crossmod check, kernel-level machine):")
    for key, (protocol, variant, knobs) in ROWS.items():
        args = "".join(f" {k}={v}" for k, v in knobs.items())
        print(f"  {protocol} {variant}{args}: {verdicts[key]}")


if __name__ == "__main__":
    main()
