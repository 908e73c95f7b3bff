"""Fixtures for the trace tests: the shared real recording's events (read once per session;
the `shared` fixture is the root conftest's) and small synthetic traces."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from conftest import missing
from crossmod.trace import speedups
from crossmod.trace.analyze import Analysis
from crossmod.trace.dat import DatReader
from crossmod.trace.events import Event
from crossmod.trace.source import open_trace

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def need_compiled() -> ModuleType:
    """`crossmod.trace._scan`, bound (even under CROSSMOD_TRACE_PURE=1)."""
    scan = speedups.compiled()
    if scan is None:  # skips, except in CI, which builds it
        missing("crossmod.trace._scan is not built (pip install -e . with a C compiler)")
    return scan


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
