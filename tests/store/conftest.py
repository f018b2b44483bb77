"""Run the store contract on every backend: SQLite (default) and a real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _pg_tool(name: str) -> str | None:
    for d in PG_BIN_DIRS:
        if (d / name).exists():
            return str(d / name)
    return shutil.which(name)


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster on 127.0.0.1 for this test session (skipped where none is installed)."""
    initdb, pg_ctl = _pg_tool("initdb"), _pg_tool("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("needs PostgreSQL server binaries (Debian package postgresql) for the PostgreSQL backend")
    pytest.importorskip("psycopg", reason="needs psycopg for the PostgreSQL backend (pip install psycopg[binary])")
    # not under pytest's 0700 temp folder: the server's own user must reach its data folder
    root = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' user exists to run the server")
        for p in (root, sock):
            os.chown(p, user.pw_uid, user.pw_gid)
        os.chmod(root, 0o755)
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(run_as + [initdb, "-D", str(data), "-U", "workbench", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sock} -c fsync=off"
    subprocess.run(run_as + [pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://workbench@127.0.0.1:{port}"
    finally:
        subprocess.run(run_as + [pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def new_postgres_database(server: str) -> str:
    """A fresh, empty database on the test server; returns its URL."""
    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                with admin.connect() as conn:
                    conn.execute(text(f"CREATE DATABASE {name}"))
                return f"{server}/{name}"
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, workspace):
    """An empty database on each backend: the workspace's SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{workspace.root / 'workbench.db'}"
    return new_postgres_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
def store(db_url, workspace):
    """The same contract tests against each backend."""
    from store import Store

    st = Store(db_url, workspace.root / "vectors")
    yield st
    st.close()
