"""Release 0.5: range priors. How likely each class is at a site in a week (BirdNET's range model), computed
once per (site, week) and kept compactly: the classes at or above a small floor, as uint16 indices and
their float32 values (see ``store.schema.RangePrior``). A new table only: existing rows are untouched.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 09:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rangeprior',
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('latitude', sa.Float(), nullable=False),
    sa.Column('longitude', sa.Float(), nullable=False),
    sa.Column('week', sa.Integer(), nullable=False),
    sa.Column('range_model', sa.String(), nullable=False),
    sa.Column('floor', sa.Float(), nullable=False),
    sa.Column('n_classes', sa.Integer(), nullable=False),
    sa.Column('classes', sa.LargeBinary(), nullable=False),
    sa.Column('occurrence', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['modelversion.id'], ),
    sa.PrimaryKeyConstraint('model_version_id', 'latitude', 'longitude', 'week')
    )


def downgrade() -> None:
    raise NotImplementedError("the workbench store only migrates forward; restore a backup to go back")
