"""Shared test fixtures: the data folder and small configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path | None:
    """The polyphonic-music data: $PCMSIM_DATA, else a sibling ../shared/data of the repository."""
    env = os.environ.get("PCMSIM_DATA")
    if env and Path(env).is_dir():
        return Path(env)
    sibling = REPO.parent / "shared" / "data"
    return sibling if sibling.is_dir() else None


@pytest.fixture
def music_data_dir() -> Path:
    d = data_dir()
    if d is None:
        pytest.skip("no music data: set PCMSIM_DATA or provide ../shared/data")
    return d


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say it when the aihwkit cross-checks did not run (they skip only when aihwkit is absent)."""
    skipped = terminalreporter.stats.get("skipped", [])
    if any("aihwkit is not installed" in str(getattr(r, "longrepr", "")) for r in skipped):
        terminalreporter.write_line(
            "NOTE: the aihwkit cross-checks were skipped: aihwkit is not installed (scripts/setup.sh installs it)",
            yellow=True,
        )
