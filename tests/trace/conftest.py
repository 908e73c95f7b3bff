"""Fixtures for the trace tests: the shared real recording (read once per session) and
small synthetic traces."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

from crossmod.trace import speedups
from crossmod.trace.analyze import Analysis
from crossmod.trace.dat import DatReader
from crossmod.trace.events import Event
from crossmod.trace.source import open_trace

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# CI checks the repo out with shared/ beside it
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "qemu-6.12-nohz"


def _missing(msg: str) -> NoReturn:
    """Skip, except in CI, which has shared/ beside the checkout and builds the compiled
    scanner: there a missing piece fails, so coverage cannot vanish silently."""
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def _need_shared() -> Path:
    if not (SHARED / "trace.dat").exists():
        _missing(f"shared recording not found at {SHARED.resolve()} (../shared beside repo)")
    return SHARED


def need_compiled() -> ModuleType:
    """`crossmod.trace._scan`, bound (even under CROSSMOD_TRACE_PURE=1)."""
    scan = speedups.compiled()
    if scan is None:
        _missing("crossmod.trace._scan is not built (pip install -e . with a C compiler)")
    return scan


@pytest.fixture(scope="session")
def shared() -> Path:
    return _need_shared()


@pytest.fixture(scope="session")
def dat_events(shared: Path) -> list[Event]:
    r = DatReader.from_path(str(shared / "trace.dat"))
    events = list(r)
    assert r.problems == [] and r.errors == []
    return events


@pytest.fixture(scope="session")
def report_text(shared: Path) -> list[str]:
    import lzma

    with lzma.open(shared / "report.txt.xz", "rt", encoding="utf-8") as f:
        return f.read().splitlines(keepends=True)


@pytest.fixture(scope="session")
def text_events(shared: Path) -> list[Event]:
    r, kind = open_trace(str(shared / "report.txt.xz"))
    assert kind == "xz trace-cmd report text"
    events = list(r)
    assert r.problems == [] and r.errors == []
    return events


@pytest.fixture(scope="session")
def dat_analysis(dat_events: list[Event]) -> Analysis:
    return Analysis((2, 3)).run(dat_events)


@pytest.fixture(scope="session")
def text_analysis(text_events: list[Event]) -> Analysis:
    return Analysis((2, 3)).run(text_events)
