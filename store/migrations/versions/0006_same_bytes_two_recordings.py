"""Release 0.4: the same bytes at two sites or times are two recordings.

The content hash stops being unique (a recorder writing identical silence at two sites, a copied test
file); what is unique is the content at a path. Existing stores hold one recording per hash, so they
satisfy the new constraint as they are.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 06:00:00
"""

from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # indexes only: no table is rebuilt (SQLite's batch mode would, and the clips' foreign keys forbid it)
    op.drop_index('ix_recording_content_hash', table_name='recording')
    op.create_index('ix_recording_content_hash', 'recording', ['content_hash'], unique=False)
    op.create_index('uq_recording_content_path', 'recording', ['content_hash', 'path'], unique=True)


def downgrade() -> None:
    raise NotImplementedError("the workbench store only migrates forward; restore a backup to go back")
