"""datastores, datasets and the runs' inputs (lineage)

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'datastores',
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('type', sa.String(length=32), nullable=False),
        sa.Column('config', sa.Text(), nullable=False),
        sa.Column('is_default', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_datastores')),
    )
    op.create_table(
        'datasets',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=True),
        sa.Column('version', sa.Integer(), nullable=True),
        sa.Column('type', sa.String(length=16), nullable=False),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('tags', sa.Text(), nullable=False),
        sa.Column('definition', sa.Text(), nullable=False),
        sa.Column('files', sa.Text(), nullable=False),
        sa.Column('created_at', sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_datasets')),
        sa.UniqueConstraint('name', 'version', name=op.f('uq_datasets_name_version')),
    )
    op.create_table(
        'run_inputs',
        sa.Column('run_id', sa.String(length=255), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('dataset_id', sa.String(length=64), nullable=True),
        sa.Column('mode', sa.String(length=16), nullable=False),
        sa.Column('details', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('run_id', 'name', name=op.f('pk_run_inputs')),
    )
    op.create_index(op.f('ix_run_inputs_dataset_id'), 'run_inputs', ['dataset_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_run_inputs_dataset_id'), table_name='run_inputs')
    op.drop_table('run_inputs')
    op.drop_table('datasets')
    op.drop_table('datastores')
