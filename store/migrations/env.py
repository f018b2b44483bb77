"""Alembic environment of the workbench store.

The store runs migrations itself (``store.migrate.upgrade``), passing the open connection in
``config.attributes["connection"]``; there is no alembic.ini. SQLite gets batch mode, so a
migration that alters a column rebuilds the table (SQLite's ALTER TABLE cannot).
"""

from alembic import context
from sqlmodel import SQLModel

import store.schema  # noqa: F401 - registers the tables on SQLModel.metadata (for autogenerate)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the workbench store runs its migrations through store.migrate.upgrade(), "
                       "which passes an open connection; run that instead of the alembic command")
context.configure(connection=connection, target_metadata=SQLModel.metadata,
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
