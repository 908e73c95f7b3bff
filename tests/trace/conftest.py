"""Fixtures for the trace tests: the shared real recording (read once per session) and
small synthetic traces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crossmod.trace.analyze import Analysis
from crossmod.trace.dat import DatReader
from crossmod.trace.events import Event
from crossmod.trace.source import open_trace

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# CI checks the repo out with shared/ beside it
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "qemu-6.12-nohz"


def _need_shared() -> Path:
    if not (SHARED / "trace.dat").exists():
        msg = f"shared recording not found at {SHARED.resolve()} (../shared beside repo)"
        if os.environ.get("CI"):  # CI always has shared/ beside the checkout: never skip there
            pytest.fail(msg)
        pytest.skip(msg)
    return SHARED


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
