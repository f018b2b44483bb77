"""The schema of release 0.1.0 (commit 5d815fa): the baseline every workspace is upgraded from.

A workspace made by 0.1.0 has these tables but no alembic_version table; the store stamps it with
this revision and upgrades it from here.

Revision ID: 0001
Revises: 
Create Date: 2026-11-30 14:15:11.506371
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('labelset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('labelset', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_labelset_name'), ['name'], unique=True)

    op.create_table('modelversion',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('embedding_space', sa.String(), nullable=False),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=True),
    sa.Column('params', sa.JSON(), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=True),
    sa.Column('artifact_path', sa.String(), nullable=True),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('ready', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['modelversion.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('modelversion', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_modelversion_name'), ['name'], unique=True)

    op.create_table('recording',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(), nullable=False),
    sa.Column('content_hash', sa.String(), nullable=False),
    sa.Column('modality', sa.String(), nullable=False),
    sa.Column('site', sa.String(), nullable=True),
    sa.Column('device', sa.String(), nullable=True),
    sa.Column('start_time', sa.DateTime(), nullable=True),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('sample_rate', sa.Integer(), nullable=True),
    sa.Column('channels', sa.Integer(), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('error', sa.String(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('recording', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recording_content_hash'), ['content_hash'], unique=True)
        batch_op.create_index(batch_op.f('ix_recording_device'), ['device'], unique=False)
        batch_op.create_index(batch_op.f('ix_recording_path'), ['path'], unique=False)
        batch_op.create_index(batch_op.f('ix_recording_site'), ['site'], unique=False)

    op.create_table('syncstate',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('watermark', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('project_id')
    )
    op.create_table('clip',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recording_id', sa.Integer(), nullable=False),
    sa.Column('start_s', sa.Float(), nullable=False),
    sa.Column('end_s', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['recording_id'], ['recording.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('recording_id', 'start_s', name='uq_clip_recording_start')
    )
    with op.batch_alter_table('clip', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clip_recording_id'), ['recording_id'], unique=False)

    op.create_table('matrix',
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('dtype', sa.String(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['model_version_id'], ['modelversion.id'], ),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('samplingrun',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('strategy', sa.String(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=True),
    sa.Column('seed', sa.Integer(), nullable=True),
    sa.Column('budget', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['modelversion.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('annotation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clip_id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('ls_task_id', sa.Integer(), nullable=False),
    sa.Column('ls_annotation_id', sa.Integer(), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=True),
    sa.Column('annotator', sa.String(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('state', sa.String(), nullable=False),
    sa.Column('note', sa.String(), nullable=True),
    sa.ForeignKeyConstraint(['clip_id'], ['clip.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'ls_annotation_id', name='uq_annotation_ls')
    )
    with op.batch_alter_table('annotation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annotation_clip_id'), ['clip_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_annotation_ls_annotation_id'), ['ls_annotation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_annotation_ls_task_id'), ['ls_task_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_annotation_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_annotation_state'), ['state'], unique=False)

    op.create_table('prediction',
    sa.Column('clip_id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(), nullable=False),
    sa.Column('probability', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['clip_id'], ['clip.id'], ),
    sa.ForeignKeyConstraint(['model_version_id'], ['modelversion.id'], ),
    sa.PrimaryKeyConstraint('clip_id', 'model_version_id', 'rank')
    )
    with op.batch_alter_table('prediction', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prediction_label'), ['label'], unique=False)

    op.create_table('score',
    sa.Column('clip_id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('max_entropy', sa.Float(), nullable=False),
    sa.Column('mean_entropy', sa.Float(), nullable=False),
    sa.Column('top1', sa.Float(), nullable=False),
    sa.Column('margin', sa.Float(), nullable=False),
    sa.Column('top_label', sa.String(), nullable=False),
    sa.ForeignKeyConstraint(['clip_id'], ['clip.id'], ),
    sa.ForeignKeyConstraint(['model_version_id'], ['modelversion.id'], ),
    sa.PrimaryKeyConstraint('clip_id', 'model_version_id')
    )
    with op.batch_alter_table('score', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_score_model_version_id'), ['model_version_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_score_top_label'), ['top_label'], unique=False)

    op.create_table('selection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('clip_id', sa.Integer(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('cluster', sa.Integer(), nullable=True),
    sa.Column('stratum', sa.String(), nullable=True),
    sa.Column('reason', sa.String(), nullable=False),
    sa.ForeignKeyConstraint(['clip_id'], ['clip.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['samplingrun.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id', 'clip_id', name='uq_selection_run_clip')
    )
    with op.batch_alter_table('selection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_selection_clip_id'), ['clip_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_selection_run_id'), ['run_id'], unique=False)

    op.create_table('task',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('clip_id', sa.Integer(), nullable=False),
    sa.Column('ls_task_id', sa.Integer(), nullable=False),
    sa.Column('label_set_id', sa.Integer(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('pushed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clip_id'], ['clip.id'], ),
    sa.ForeignKeyConstraint(['label_set_id'], ['labelset.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['samplingrun.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'clip_id', name='uq_task_project_clip')
    )
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_clip_id'), ['clip_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_ls_task_id'), ['ls_task_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_project_id'), ['project_id'], unique=False)



def downgrade() -> None:
    raise NotImplementedError("the workbench store only migrates forward; restore a backup to go back")
