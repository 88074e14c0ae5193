"""journal_marks: how far each process's metric journal is stored (exactly-once replay after a crash)

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'journal_marks',
        sa.Column('journal', sa.String(length=255), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint('journal', name=op.f('pk_journal_marks')),
    )


def downgrade() -> None:
    op.drop_table('journal_marks')
