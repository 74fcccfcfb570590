"""Monitoring: points, permit limits, measurements, raw packet archive, alarms.

Revision ID: 0002_monitoring
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import ingot.core.db


revision = "0002_monitoring"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('monitoring_points',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('enterprise_id', sa.Integer(), nullable=False),
    sa.Column('division_code', sa.String(length=6), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('mn', sa.String(length=24), nullable=False),
    sa.Column('password_salt', sa.String(length=32), nullable=False),
    sa.Column('password_digest', sa.String(length=64), nullable=False),
    sa.Column('pollutants', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('is_demo', sa.Boolean(), nullable=False),
    sa.Column('last_packet_at', ingot.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_monitoring_points_enterprise_id_enterprises')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_monitoring_points_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_points')),
    sa.UniqueConstraint('mn', name=op.f('uq_monitoring_points_mn')),
    sa.UniqueConstraint('site_id', 'name', name=op.f('uq_monitoring_points_site_id'))
    )
    with op.batch_alter_table('monitoring_points', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitoring_points_division_code'), ['division_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_monitoring_points_enterprise_id'), ['enterprise_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_monitoring_points_site_id'), ['site_id'], unique=False)

    op.create_table('monitoring_limits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('point_id', sa.Integer(), nullable=False),
    sa.Column('pollutant', sa.String(length=16), nullable=False),
    sa.Column('value', sa.Numeric(precision=24, scale=6), nullable=False),
    sa.Column('unit', sa.String(length=16), nullable=False),
    sa.Column('source_standard', sa.String(length=128), nullable=False),
    sa.Column('clause', sa.String(length=128), nullable=False),
    sa.Column('is_demo', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['point_id'], ['monitoring_points.id'], name=op.f('fk_monitoring_limits_point_id_monitoring_points'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_limits')),
    sa.UniqueConstraint('point_id', 'pollutant', name=op.f('uq_monitoring_limits_point_id'))
    )
    with op.batch_alter_table('monitoring_limits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitoring_limits_point_id'), ['point_id'], unique=False)

    op.create_table('monitoring_measurements',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('point_id', sa.Integer(), nullable=False),
    sa.Column('pollutant', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('data_time', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('rtd', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('avg', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('min', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('max', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('zs_rtd', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('zs_avg', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('zs_min', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('zs_max', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('cou', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('flag', sa.String(length=2), nullable=True),
    sa.Column('received_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_measurements'))
    )
    with op.batch_alter_table('monitoring_measurements', schema=None) as batch_op:
        batch_op.create_index('ix_monitoring_measurements_data_time', ['data_time'], unique=False)
        batch_op.create_index('ix_monitoring_measurements_series', ['point_id', 'kind', 'pollutant', 'data_time'], unique=False)

    op.create_table('monitoring_raw_packets',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('received_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('point_id', sa.Integer(), nullable=True),
    sa.Column('mn', sa.String(length=32), nullable=True),
    sa.Column('peer', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('accepted', sa.Boolean(), nullable=False),
    sa.Column('reason_code', sa.String(length=48), nullable=True),
    sa.Column('reason', sa.String(length=512), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_raw_packets'))
    )
    with op.batch_alter_table('monitoring_raw_packets', schema=None) as batch_op:
        batch_op.create_index('ix_monitoring_raw_packets_point', ['point_id', 'received_at'], unique=False)
        batch_op.create_index('ix_monitoring_raw_packets_received', ['received_at'], unique=False)

    op.create_table('monitoring_alarms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('point_id', sa.Integer(), nullable=False),
    sa.Column('enterprise_id', sa.Integer(), nullable=False),
    sa.Column('division_code', sa.String(length=6), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('pollutant', sa.String(length=16), nullable=True),
    sa.Column('dedup_key', sa.String(length=128), nullable=False),
    sa.Column('opened_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('data_time', ingot.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('value', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('limit_value', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('unit', sa.String(length=16), nullable=True),
    sa.Column('flag', sa.String(length=2), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('acknowledged_by', sa.String(length=64), nullable=True),
    sa.Column('acknowledged_at', ingot.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=64), nullable=True),
    sa.Column('closed_at', ingot.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['point_id'], ['monitoring_points.id'], name=op.f('fk_monitoring_alarms_point_id_monitoring_points'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_alarms')),
    sa.UniqueConstraint('dedup_key', name=op.f('uq_monitoring_alarms_dedup_key'))
    )
    with op.batch_alter_table('monitoring_alarms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitoring_alarms_enterprise_id'), ['enterprise_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_monitoring_alarms_point_id'), ['point_id'], unique=False)
        batch_op.create_index('ix_monitoring_alarms_scope', ['division_code', 'state'], unique=False)


def downgrade() -> None:
    op.drop_table("monitoring_alarms")
    op.drop_table("monitoring_raw_packets")
    op.drop_table("monitoring_measurements")
    op.drop_table("monitoring_limits")
    op.drop_table("monitoring_points")
