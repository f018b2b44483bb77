"""Shared fixtures: where the shared test data lives, and a fresh workspace per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WORKBENCH_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, skipping the test with a clear reason where it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the shared test data at {path} (absent in this clone)")
    return path


@pytest.fixture
def workspace(tmp_path):
    from workbench.config import Workspace

    return Workspace.resolve(tmp_path / "ws")


@pytest.fixture
def store(workspace):
    st = workspace.open_store()
    yield st
    st.close()
