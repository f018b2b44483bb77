"""Release 0.2: images. Where a clip of an image lies in its frame (detector crops, blank frames), and the
box an annotator drew or corrected.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 15:59:00.465961
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('clipbox',
    sa.Column('clip_id', sa.Integer(), nullable=False),
    sa.Column('x', sa.Float(), nullable=False),
    sa.Column('y', sa.Float(), nullable=False),
    sa.Column('w', sa.Float(), nullable=False),
    sa.Column('h', sa.Float(), nullable=False),
    sa.Column('category', sa.String(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['clip_id'], ['clip.id'], ),
    sa.PrimaryKeyConstraint('clip_id')
    )
    with op.batch_alter_table('annotation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('region', sa.JSON(), nullable=True))



def downgrade() -> None:
    raise NotImplementedError("the workbench store only migrates forward; restore a backup to go back")
