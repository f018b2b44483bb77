"""Release 0.4: several experts (after 0006, the same bytes at two sites). The time an annotator spent on an
annotation (Label Studio's ``lead_time``), whether a reviewer marked it as the task's ground truth (the adjudicated answer), and how many experts a task
asks for (``overlap`` 2 for the share of a batch labelled twice to measure agreement).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 05:45:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('annotation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lead_time', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('ground_truth', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overlap', sa.Integer(), nullable=False, server_default='1'))


def downgrade() -> None:
    raise NotImplementedError("the workbench store only migrates forward; restore a backup to go back")
