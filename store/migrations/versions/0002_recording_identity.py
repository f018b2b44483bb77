"""Release 0.2: a recording's decoded frame count, the size and mtime of its file, and what replaced it.

Recordings of 0.1.0 keep NULL there: their clips are still cut (clamped to what decodes), and their
files are checked by full hash until they are re-ingested.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 14:15:52.560025
"""

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

def upgrade() -> None:
    with op.batch_alter_table('recording', schema=None) as batch_op:
        batch_op.add_column(sa.Column('frames', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('file_size', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('file_mtime_ns', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('replaced_by', sa.Integer(), nullable=True))

def downgrade() -> None:
    raise NotImplementedError("the workbench store only migrates forward; restore a backup to go back")
