"""SQL plumbing every part of the store shares: sessions, SQLite's transaction setup, IN-lists, bulk inserts.

No role lives here, only what the records, the vectors and the ledger each need from the one
database they share: a session factory (write sessions take SQLite's write lock at BEGIN), ids
cut into IN-lists every backend accepts, an insert that tolerates a concurrent creator, and the
driver's fastest path for many rows.
"""

from __future__ import annotations

import importlib
from typing import Iterable, Optional, Protocol, Sequence

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

IN_CHUNK = 10_000  # ids per SQL IN-list: SQLite refuses more than 32,766 bound values per statement


class SessionFactory(Protocol):
    """Makes the sessions of one store: ``write`` sessions on SQLite begin with BEGIN IMMEDIATE."""

    def __call__(self, write: bool = False) -> Session: ...


def sqlite_pragmas(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun by sqlite_begin, not by the driver
    cur = dbapi_connection.cursor()
    # first: a new connection opened while another process writes (or checkpoints) waits for it in the
    # journal-mode pragma too, instead of failing at once with "database is locked"
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def sqlite_read_pragmas(dbapi_connection, _record) -> None:
    """A read-only connection: nothing that would write (no journal mode change)."""
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def sqlite_begin(conn) -> None:
    """Begin a SQLite transaction: IMMEDIATE (the write lock now) for write sessions, deferred for reads."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("workbench_write") else "BEGIN")


def session_factory(engine: Engine) -> SessionFactory:
    """The session factory of ``engine``: reads on the engine itself, writes on a copy marked ``workbench_write``."""
    write_engine = engine.execution_options(workbench_write=True)

    def session(write: bool = False) -> Session:
        """A session; ``write`` sessions on SQLite begin with BEGIN IMMEDIATE.

        SQLite lets one writer in at a time. A transaction that reads, then writes (read the matrix row
        count, then append after it) must hold the write lock from its start, or two processes read the
        same state and the second fails ("database is locked") or, worse, builds on a stale read.
        BEGIN IMMEDIATE makes the second writer wait (busy_timeout) and then read the first one's
        commit. Readers never wait (WAL). PostgreSQL writers lock the rows they build on instead.
        """
        return Session(write_engine if write else engine, expire_on_commit=False)

    return session


def in_chunks(values: Sequence[int], size: Optional[int] = None) -> Iterable[list[int]]:
    """``values`` in lists short enough for one SQL IN-list on every backend."""
    values, size = list(values), size or IN_CHUNK
    for i in range(0, len(values), size):
        yield values[i:i + size]


def insert_missing(s: Session, row: SQLModel) -> None:
    """Insert ``row`` unless a row with the same unique key exists, inside the caller's transaction.

    For records made on first use (a model version, a label set, a matrix): two processes may both
    find one missing; the second insert then does nothing instead of failing, and both read back the
    stored row.
    """
    table = type(row).__table__
    values = {c.name: getattr(row, c.name) for c in table.columns if getattr(row, c.name) is not None}
    dialect = s.connection().dialect.name
    if dialect in ("postgresql", "sqlite"):
        module = importlib.import_module(f"sqlalchemy.dialects.{dialect}")
        s.execute(module.insert(table).values(**values).on_conflict_do_nothing())
        return
    try:
        with s.begin_nested():
            s.execute(insert(table).values(**values))
    except IntegrityError:
        pass


def insert_rows(conn, table: type[SQLModel], columns: Sequence[str], rows: Iterable[tuple]) -> None:
    """Insert plain tuples through the driver's fastest path, inside the caller's transaction.

    COPY on PostgreSQL (psycopg), the DBAPI's executemany on SQLite: no ORM objects, no per-row
    dictionaries. For a million clips with five predictions each this is the difference between
    minutes and seconds.
    """
    name = table.__tablename__
    prep = conn.dialect.identifier_preparer
    cols = ", ".join(prep.quote(c) for c in columns)
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        with conn.connection.driver_connection.cursor() as cur:
            with cur.copy(f"COPY {prep.quote(name)} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    rows = list(rows)
    if not rows:
        return
    marks = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(conn.dialect.paramstyle)
    if marks is None:  # another driver: SQLAlchemy Core executemany, slower but portable
        conn.execute(insert(table), [dict(zip(columns, row)) for row in rows])
        return
    conn.exec_driver_sql(f"INSERT INTO {prep.quote(name)} ({cols}) VALUES ({', '.join([marks] * len(columns))})",
                         rows)
