"""Where the team's reference data lives (../shared/data beside the clone, as in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

REFERENCE_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def require(path: Path) -> Path:
    """`path`, or a test failure (never a skip: CI always has the reference data)."""
    if not path.exists():
        pytest.fail(f"reference data {path} not found (expected ../shared/data beside the clone)")
    return path
