"""Every example runs and prints what its reference output says (pyelftools'
run_examples_test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_matches_reference_output(path):
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    ref = ROOT / "examples" / "reference_output" / (path.stem + ".out")
    assert out == ref.read_text()
