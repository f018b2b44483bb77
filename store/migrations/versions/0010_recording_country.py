"""Release 0.5: where a recording is by country. ``country`` (ISO 3166-1 alpha-3) and ``admin1_region`` (its
ISO 3166-2 subdivision) on recordings, from the metadata sidecar: the keys of SpeciesNet-style geofence rules
(``store.geofence``). Nullable columns only: existing recordings have no country and are never fenced.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 09:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('recording', schema=None) as batch_op:
        batch_op.add_column(sa.Column('country', sa.String(), nullable=True))
        batch_op.add_column(sa.Column('admin1_region', sa.String(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("the workbench store only migrates forward; restore a backup to go back")
