"""Named locks shared by every process using one store, so two commands never trip over each other.

A lock is exclusive between processes (and hosts, on PostgreSQL): on a SQLite workspace it is an
``flock`` on a small file next to the database (released by the kernel when the holder dies, even
by kill -9); on PostgreSQL it is a session advisory lock (released when the holder's connection
closes). A process that finds the lock taken says so once (``on_wait``, with what the holder
recorded about itself) and waits.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
import zlib
from enum import StrEnum
from pathlib import Path
from typing import Callable, Iterator, Optional

from sqlalchemy import text
from sqlalchemy.engine import Engine

class LockName(StrEnum):
    """The store-wide locks: the loop's stages take one each, so two commands of one kind run one after the other
    while different kinds run side by side (the name is the lock file's and the advisory key's)."""

    SCHEMA = "schema"            # migrating the schema
    INGEST = "ingest"            # no file is ingested twice
    SELECTION = "selection"      # a sampling run sees the selections before it
    FINETUNE = "finetune"        # one head trained at a time
    SCORING = "scoring"          # new clips scored by the current head once
    ANNOTATION = "annotation"    # two pushes or pulls never import the same clips twice


#: on_wait(message): called once when the lock is busy, before waiting for it
WaitCallback = Callable[[str], None]


def _holder_note() -> str:
    cmd = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv[:3])) or "python"
    return json.dumps({"pid": os.getpid(), "command": cmd, "since": time.strftime("%Y-%m-%d %H:%M:%S")})


def _describe(note: str) -> str:
    try:
        info = json.loads(note)
        return f"pid {info['pid']} ({info['command']}, since {info['since']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


def sqlite_path(engine: Engine) -> Optional[Path]:
    """The database file of a file-backed SQLite engine, else None (in-memory or another backend)."""
    if engine.dialect.name != "sqlite":
        return None
    db = engine.url.database
    if not db or db == ":memory:" or db.startswith("file::memory:"):
        return None
    return Path(db)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for a lock name (PostgreSQL advisory locks are keyed by bigint)."""
    return zlib.crc32(b"workbench:" + name.encode()) - (1 << 31)


@contextlib.contextmanager
def exclusive(engine: Engine, name: str, on_wait: Optional[WaitCallback] = None) -> Iterator[None]:
    """Hold the store-wide lock ``name`` for the ``with`` block, waiting for it if another process holds it."""
    db = sqlite_path(engine)
    if db is not None:
        with _file_lock(db.with_name(f"{db.name}.{name}.lock"), name, on_wait):
            yield
    elif engine.dialect.name == "postgresql":
        with _advisory_lock(engine, name, on_wait):
            yield
    else:  # in-memory SQLite (one process) or a backend without a lock primitive we use
        yield


@contextlib.contextmanager
def _file_lock(path: Path, name: str, on_wait: Optional[WaitCallback]) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip("\0\n ")
                on_wait(f"waiting for {_describe(holder)} to release the workspace's {name} lock")
            fcntl.flock(fd, fcntl.LOCK_EX)
        note = _holder_note().encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, note, 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _advisory_lock(engine: Engine, name: str, on_wait: Optional[WaitCallback]) -> Iterator[None]:
    key = advisory_key(name)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        if not got:
            if on_wait is not None:
                row = conn.execute(text(
                    "SELECT a.pid, a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                    "AND l.objid = (:k & 4294967295)::oid LIMIT 1"), {"k": key}).first()
                who = (f"server process {row[0]} ({row[1] or 'a workbench command'} from {row[2] or 'this host'}, "
                       f"since {row[3]:%Y-%m-%d %H:%M:%S})" if row else "another process")
                on_wait(f"waiting for {who} to release the store's {name} lock")
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
