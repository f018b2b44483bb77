"""Release 0.2: a model version's output type (sigmoid or softmax) and the strategy lab's simulation runs.

Model versions of earlier releases are BirdNET and its one-vs-rest heads: sigmoid outputs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 14:59:59.297011
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('simulationrun',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=True),
    sa.Column('summary', sa.JSON(), nullable=True),
    sa.Column('curves', sa.JSON(), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('modelversion', schema=None) as batch_op:
        batch_op.add_column(sa.Column('output_type', sa.String(), nullable=False, server_default='sigmoid'))


def downgrade() -> None:
    raise NotImplementedError("the workbench store only migrates forward; restore a backup to go back")
