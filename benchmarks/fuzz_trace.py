"""The long profile of the trace fuzzing test (tests/trace/test_fuzz.py).

Run: python benchmarks/fuzz_trace.py [--runs N] [--seed S] [--text-mb M]
Mutates the shared recording (../shared/data/qemu-6.12-nohz: its trace.dat, and its report
text compressed as xz, gzip and zstd): N cut or byte-flipped copies per form, each read by
`crossmod trace --json` in process. Prints the seed (accepted back), then per form the runs,
their exit statuses, how many reported every event, fewer with a warning, fewer with an
error, and nothing; and every run that broke the promise (tests/trace/fuzzing.py), with the
mutation that did it. Exit status 0 when no run broke it, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.trace.fuzzing import baseline, events, forms, mutants, verdict

from crossmod.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "qemu-6.12-nohz"


def _outcome(path: Path, whole: int) -> str:
    r = CliRunner().invoke(main, ["trace", str(path), "--isolated", "2-3", "--json"])
    if not r.stdout:
        return f"exit {r.exit_code}, no report"
    n = events(json.loads(r.stdout))
    kind = "all events" if n >= whole else "fewer events"
    said = "error" if r.exit_code == 2 else "warning" if json.loads(r.stdout)[
        "problem_count"] else "nothing said"
    return f"exit {r.exit_code}, {kind}, {said}"


def main_() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=400, help="mutants per form")
    ap.add_argument("--seed", type=int, default=None, help="printed; accepted back")
    ap.add_argument("--text-mb", type=int, default=8, help="report text compressed (MB)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"seed {seed}  runs per form {args.runs}  text {args.text_mb} MB", flush=True)
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for form, data in forms(SHARED, args.text_mb << 20).items():
            whole_path = Path(tmp) / f"whole-{form}"
            whole_path.write_bytes(data)
            whole = baseline(whole_path)
            rng = random.Random(f"{seed}/{form}")
            tally: Counter[str] = Counter()
            t0 = time.perf_counter()
            for m in mutants(data, form, rng, args.runs // 2, args.runs - args.runs // 2):
                path = Path(tmp) / "mutant"
                path.write_bytes(m.data)
                why = verdict(path, whole)
                if why:
                    bad += 1
                    print(f"  BROKEN {form} {m.how}: {why}", flush=True)
                tally[_outcome(path, whole)] += 1
            print(f"{form}: {sum(tally.values())} runs, {whole:,} events undamaged, "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            for what, n in tally.most_common():
                print(f"  {n:6d}  {what}")
    print(f"{bad} runs broke the promise (seed {seed})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main_())
