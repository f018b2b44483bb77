"""Schema migrations: a store opens at the current schema whatever release of the workbench made it.

The revisions are Alembic scripts in ``store/migrations/versions`` (the standard for SQLAlchemy),
run by the store itself when it opens a database, on SQLite and PostgreSQL alike:

* a new, empty database is brought from nothing to the newest revision;
* a workspace of release 0.1.0 (its tables, but no ``alembic_version`` table) is stamped with the
  baseline revision ``0001`` and upgraded in place;
* a database at an older revision is upgraded; one at a revision this code does not know (written
  by a newer workbench) is refused with a message, never touched.

Two processes opening the same workspace at once do not race: the migration runs under the
store-wide ``schema`` lock and the second process finds the schema current once it gets the lock.
The check that the schema is current takes no lock, so opening an up-to-date store stays cheap.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

from store import locks
from store.errors import StoreError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"  # the schema of release 0.1.0, made before the store had migrations


class SchemaError(StoreError):
    """The database's schema cannot be brought to the one this code needs."""


def _config(connection: Optional[Connection] = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision this code knows."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current(engine: Engine) -> Optional[str]:
    """The revision the database is at; None for an empty database or one of release 0.1.0."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, on_wait: Optional[locks.WaitCallback] = None) -> bool:
    """Bring the database to the newest revision; return True when anything was migrated."""
    target = head()
    if current(engine) == target:
        return False
    with locks.exclusive(engine, locks.LockName.SCHEMA, on_wait=on_wait):
        with engine.begin() as conn:
            rev = MigrationContext.configure(conn).get_current_revision()
            if rev == target:
                return False  # another process migrated while we waited
            scripts = ScriptDirectory.from_config(_config())
            if rev is not None and rev not in {s.revision for s in scripts.walk_revisions()}:
                raise SchemaError(
                    f"the store's schema is at revision {rev!r}, which this workbench does not know (its newest is "
                    f"{target!r}): it was written by a newer release; upgrade the workbench to open it")
            cfg = _config(conn)
            if rev is None and inspect(conn).has_table("recording"):
                log.warning("upgrading a workspace of release 0.1.0 to schema revision %s", target)
                command.stamp(cfg, BASELINE)
            elif rev is not None:
                log.warning("upgrading the store's schema from revision %s to %s", rev, target)
            command.upgrade(cfg, "head")
    return True
