"""Policy: stored compliance runs and their verdicts.

Revision ID: 0004_policy
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import ingot.core.db


revision = "0004_policy"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('compliance_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('catalogue_hash', sa.String(length=64), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('overrides', sa.JSON(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('unit_count', sa.Integer(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compliance_runs'))
    )
    op.create_index(op.f('ix_compliance_runs_as_of'), 'compliance_runs', ['as_of'], unique=False)
    op.create_index(op.f('ix_compliance_runs_catalogue_hash'), 'compliance_runs', ['catalogue_hash'], unique=False)
    op.create_table('compliance_verdicts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.String(length=128), nullable=False),
    sa.Column('check_type', sa.String(length=32), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=256), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('enterprise_id', sa.Integer(), nullable=True),
    sa.Column('enterprise_name', sa.String(length=128), nullable=False),
    sa.Column('unit_name', sa.String(length=128), nullable=False),
    sa.Column('group', sa.JSON(), nullable=True),
    sa.Column('province', sa.String(length=6), nullable=True),
    sa.Column('prefecture', sa.String(length=6), nullable=True),
    sa.Column('metal', sa.String(length=32), nullable=True),
    sa.Column('process_type', sa.String(length=64), nullable=True),
    sa.Column('measured', sa.JSON(), nullable=False),
    sa.Column('thresholds', sa.JSON(), nullable=False),
    sa.Column('units', sa.JSON(), nullable=False),
    sa.Column('matched', sa.JSON(), nullable=False),
    sa.Column('missing', sa.JSON(), nullable=False),
    sa.Column('capacities', sa.JSON(), nullable=False),
    sa.Column('due', sa.Date(), nullable=True),
    sa.Column('headroom', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('citation_seed', sa.String(length=64), nullable=False),
    sa.Column('citation_section', sa.String(length=128), nullable=False),
    sa.Column('citation_quote', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['compliance_runs.id'], name=op.f('fk_compliance_verdicts_run_id_compliance_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compliance_verdicts'))
    )
    op.create_index(op.f('ix_compliance_verdicts_enterprise_id'), 'compliance_verdicts', ['enterprise_id'], unique=False)
    op.create_index(op.f('ix_compliance_verdicts_run_id'), 'compliance_verdicts', ['run_id'], unique=False)
    op.create_index('ix_compliance_verdicts_run_subject', 'compliance_verdicts', ['run_id', 'rule_id', 'subject'], unique=False)
    op.create_index(op.f('ix_compliance_verdicts_unit_id'), 'compliance_verdicts', ['unit_id'], unique=False)
    op.create_index(op.f('ix_compliance_verdicts_verdict'), 'compliance_verdicts', ['verdict'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_compliance_verdicts_verdict'), table_name='compliance_verdicts')
    op.drop_index(op.f('ix_compliance_verdicts_unit_id'), table_name='compliance_verdicts')
    op.drop_index('ix_compliance_verdicts_run_subject', table_name='compliance_verdicts')
    op.drop_index(op.f('ix_compliance_verdicts_run_id'), table_name='compliance_verdicts')
    op.drop_index(op.f('ix_compliance_verdicts_enterprise_id'), table_name='compliance_verdicts')
    op.drop_table('compliance_verdicts')
    op.drop_index(op.f('ix_compliance_runs_catalogue_hash'), table_name='compliance_runs')
    op.drop_index(op.f('ix_compliance_runs_as_of'), table_name='compliance_runs')
    op.drop_table('compliance_runs')
