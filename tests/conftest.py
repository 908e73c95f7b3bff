"""Shared pytest configuration: the opt-in network marker."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-network",
        action="store_true",
        default=False,
        help="run tests that download real artefacts (Debian kernel packages)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-network"):
        return
    skip = pytest.mark.skip(reason="downloads a real artefact; opt in with --run-network")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)
