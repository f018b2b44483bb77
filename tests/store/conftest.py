"""Run the store contract on every backend: SQLite (default) and a real PostgreSQL server (tests/conftest.py)."""

from __future__ import annotations

import pytest

@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, workspace):
    """An empty database on each backend: the workspace's SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{workspace.root / 'workbench.db'}"
    from tests.conftest import new_postgres_database

    return new_postgres_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
def store(db_url, workspace):
    """The same contract tests against each backend."""
    from store import Store

    st = Store(db_url, workspace.root / "vectors")
    yield st
    st.close()
