"""Release 0.3: 64-bit clip ids and matrix row counts on PostgreSQL.

A lab running 100 recorders makes about a billion 3 s windows a year: PostgreSQL's INTEGER (and the
sequence behind an auto-numbered id, created ``AS integer``) stops at 2,147,483,647, in the second year.
Every column holding a clip id, the clip id sequence and the matrices' row counts become BIGINT.
SQLite's INTEGER is already 64-bit: nothing changes there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 18:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

#: (table, column) holding clip ids, and the matrices' committed row counts.
COLUMNS = [("clip", "id"), ("clipbox", "clip_id"), ("prediction", "clip_id"), ("score", "clip_id"),
           ("selection", "clip_id"), ("task", "clip_id"), ("annotation", "clip_id"), ("matrix", "rows")]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer(),
                        existing_nullable=False)
    sequence = bind.execute(sa.text("SELECT pg_get_serial_sequence('clip', 'id')")).scalar()
    if sequence:
        op.execute(f"ALTER SEQUENCE {sequence} AS bigint")


def downgrade() -> None:
    raise NotImplementedError("the workbench store only migrates forward; restore a backup to go back")
