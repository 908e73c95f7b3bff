"""Shared pytest configuration: the opt-in network and lab markers, and the real recording
in ../shared (one fixture for every test directory that reads it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

# CI checks the repo out with shared/ beside it
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "qemu-6.12-nohz"


def missing(msg: str) -> NoReturn:
    """Skip, except in CI, which has shared/ beside the checkout and builds the compiled
    scanner: there a missing piece fails, so coverage cannot vanish silently."""
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared QEMU recording's directory (trace.dat, report.txt.xz, /proc/interrupts)."""
    if not (SHARED / "trace.dat").exists():
        missing(f"shared recording not found at {SHARED.resolve()} (../shared beside repo)")
    return SHARED


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-network",
        action="store_true",
        default=False,
        help="run tests that download real artefacts (Debian kernel packages)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CROSSMOD_LAB") != "1":
        lab = pytest.mark.skip(reason="boots a kernel under QEMU; opt in with CROSSMOD_LAB=1")
        for item in items:
            if item.get_closest_marker("lab") is not None:
                item.add_marker(lab)
    if config.getoption("--run-network"):
        return
    skip = pytest.mark.skip(reason="downloads a real artefact; opt in with --run-network")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    """Say, in the summary, how many tests skipped for want of the real recording or the
    compiled scanner (outside CI; CI fails them), so the coverage lost is not missed."""
    missing: dict[str, int] = {}
    for rep in terminalreporter.stats.get("skipped", []):
        reason = str(rep.longrepr[2]) if isinstance(rep.longrepr, tuple) else ""
        reason = reason.removeprefix("Skipped: ")
        if "shared recording not found" in reason or "_scan is not built" in reason:
            missing[reason] = missing.get(reason, 0) + 1
    for reason, n in missing.items():
        terminalreporter.write_line(f"{n} test{'s' * (n != 1)} skipped: {reason}", yellow=True)
