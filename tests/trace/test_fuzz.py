"""A bounded fuzzing run over the shared recording (the long run: benchmarks/fuzz_trace.py).

Cuts at many offsets and byte flips of the trace.dat and of its report text in every
compressed form: no run may raise, and none may exit 0 reporting fewer events than the
undamaged file without saying so (tests/trace/fuzzing.py). The seed is
``CROSSMOD_FUZZ_SEED`` (default 13) and is printed with any failure.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from .fuzzing import baseline, forms, mutants, verdict

SEED = int(os.environ.get("CROSSMOD_FUZZ_SEED", "13"))
# per form: (cuts, flips); ~60 runs, about half a minute on this machine
PLAN = {"trace.dat": (14, 22), "xz": (4, 4), "gzip": (4, 4), "zstd": (4, 4)}


@pytest.fixture(scope="module")
def undamaged(shared: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> dict[str, tuple[bytes, int]]:
    out = {}
    for form, data in forms(shared, 8 << 20).items():
        path = tmp_path_factory.mktemp("whole") / form
        path.write_bytes(data)
        out[form] = (data, baseline(path))
    return out


@pytest.mark.parametrize("form", sorted(PLAN))
def test_damaged_copies_keep_the_promise(undamaged: dict[str, tuple[bytes, int]], form: str,
                                         tmp_path: Path) -> None:
    data, whole = undamaged[form]
    rng = random.Random(f"{SEED}/{form}")
    broken = []
    runs = 0
    for m in mutants(data, form, rng, *PLAN[form]):
        path = tmp_path / "mutant"
        path.write_bytes(m.data)
        why = verdict(path, whole)
        runs += 1
        if why:
            broken.append(f"{m.form} {m.how}: {why}")
    assert runs == sum(PLAN[form])
    assert not broken, f"CROSSMOD_FUZZ_SEED={SEED}: " + "; ".join(broken)
