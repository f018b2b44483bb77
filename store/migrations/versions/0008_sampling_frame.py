"""Release 0.5: what a sampling run drew from (``samplingrun.frame``): for an audit run, the number of pool
clips in each score bin when it was drawn, so each audit label's inclusion probability (picks in its bin /
clips in its bin) is known and precision and calibration estimated from audit labels can be weighted back to
the pool.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('samplingrun', schema=None) as batch_op:
        batch_op.add_column(sa.Column('frame', sa.JSON(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("the workbench store only migrates forward; restore a backup to go back")
