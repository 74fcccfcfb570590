"""Core (users, audit log) and the industry registry; the audit log is made append-only by triggers.

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 19:12:46.704553
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


AUDIT_REFUSAL = "audit_log is append-only"


def _create_audit_triggers() -> None:
    """The database itself refuses to rewrite history, whatever client connects."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{AUDIT_REFUSAL}'; END $$"
        )
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{action.lower()} BEFORE {action} ON audit_log "
                "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()"
            )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{action.lower()} BEFORE {action} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, '{AUDIT_REFUSAL}'); END"
            )


def _drop_audit_triggers() -> None:
    for action in ("update", "delete"):
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS audit_log_no_{action} ON audit_log")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS audit_log_no_{action}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_log_refuse_change()")


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=64), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('division_code', sa.String(length=6), nullable=True),
    sa.Column('enterprise_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_division_code'), ['division_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_entity'), ['entity'], unique=False)

    op.create_table('divisions',
    sa.Column('code', sa.String(length=6), nullable=False),
    sa.Column('name_zh', sa.String(length=64), nullable=False),
    sa.Column('name_en', sa.String(length=128), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('parent_code', sa.String(length=6), nullable=True),
    sa.ForeignKeyConstraint(['parent_code'], ['divisions.code'], name=op.f('fk_divisions_parent_code_divisions')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_divisions'))
    )
    with op.batch_alter_table('divisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_divisions_parent_code'), ['parent_code'], unique=False)

    op.create_table('enterprise_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enterprise_groups')),
    sa.UniqueConstraint('name', name=op.f('uq_enterprise_groups_name'))
    )
    op.create_table('registry_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('entity_id', sa.String(length=32), nullable=False),
    sa.Column('version_no', sa.Integer(), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_versions')),
    sa.UniqueConstraint('entity', 'entity_id', 'version_no', name=op.f('uq_registry_versions_entity'))
    )
    with op.batch_alter_table('registry_versions', schema=None) as batch_op:
        batch_op.create_index('ix_registry_versions_lookup', ['entity', 'entity_id', 'valid_from'], unique=False)

    op.create_table('parks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('division_code', sa.String(length=6), nullable=False),
    sa.Column('industries', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['division_code'], ['divisions.code'], name=op.f('fk_parks_division_code_divisions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parks')),
    sa.UniqueConstraint('name', name=op.f('uq_parks_name'))
    )
    with op.batch_alter_table('parks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parks_division_code'), ['division_code'], unique=False)

    op.create_table('enterprises',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('uscc', sa.String(length=18), nullable=False),
    sa.Column('ownership', sa.String(length=32), nullable=False),
    sa.Column('division_code', sa.String(length=6), nullable=False),
    sa.Column('park_id', sa.Integer(), nullable=True),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('above_designated', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['division_code'], ['divisions.code'], name=op.f('fk_enterprises_division_code_divisions')),
    sa.ForeignKeyConstraint(['group_id'], ['enterprise_groups.id'], name=op.f('fk_enterprises_group_id_enterprise_groups')),
    sa.ForeignKeyConstraint(['park_id'], ['parks.id'], name=op.f('fk_enterprises_park_id_parks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enterprises')),
    sa.UniqueConstraint('uscc', name=op.f('uq_enterprises_uscc'))
    )
    with op.batch_alter_table('enterprises', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enterprises_division_code'), ['division_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_enterprises_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_enterprises_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_enterprises_park_id'), ['park_id'], unique=False)

    op.create_table('sites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enterprise_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('division_code', sa.String(length=6), nullable=False),
    sa.Column('address', sa.String(length=256), nullable=False),
    sa.ForeignKeyConstraint(['division_code'], ['divisions.code'], name=op.f('fk_sites_division_code_divisions')),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_sites_enterprise_id_enterprises')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sites')),
    sa.UniqueConstraint('enterprise_id', 'name', name=op.f('uq_sites_enterprise_id'))
    )
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sites_division_code'), ['division_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_sites_enterprise_id'), ['enterprise_id'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=128), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('division_code', sa.String(length=6), nullable=True),
    sa.Column('enterprise_id', sa.Integer(), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_users_enterprise_id_enterprises')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('production_units',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('process_type', sa.String(length=64), nullable=False),
    sa.Column('commissioned_on', sa.Date(), nullable=True),
    sa.Column('approved_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_production_units_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_production_units')),
    sa.UniqueConstraint('site_id', 'name', name=op.f('uq_production_units_site_id'))
    )
    with op.batch_alter_table('production_units', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_production_units_process_type'), ['process_type'], unique=False)
        batch_op.create_index(batch_op.f('ix_production_units_site_id'), ['site_id'], unique=False)

    op.create_table('unit_capacities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('product_code', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Numeric(precision=24, scale=6), nullable=False),
    sa.Column('unit', sa.String(length=16), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['production_units.id'], name=op.f('fk_unit_capacities_unit_id_production_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unit_capacities')),
    sa.UniqueConstraint('unit_id', 'product_code', 'effective_from', name=op.f('uq_unit_capacities_unit_id'))
    )
    with op.batch_alter_table('unit_capacities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_unit_capacities_unit_id'), ['unit_id'], unique=False)

    op.create_table('unit_declarations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('measure_code', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Numeric(precision=24, scale=6), nullable=False),
    sa.Column('unit', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=256), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['production_units.id'], name=op.f('fk_unit_declarations_unit_id_production_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unit_declarations')),
    sa.UniqueConstraint('unit_id', 'year', 'measure_code', name=op.f('uq_unit_declarations_unit_id'))
    )
    with op.batch_alter_table('unit_declarations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_unit_declarations_unit_id'), ['unit_id'], unique=False)

    op.create_table('unit_parameters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('value_label', sa.String(length=64), nullable=True),
    sa.Column('unit', sa.String(length=16), nullable=True),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['production_units.id'], name=op.f('fk_unit_parameters_unit_id_production_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unit_parameters')),
    sa.UniqueConstraint('unit_id', 'code', 'effective_from', name=op.f('uq_unit_parameters_unit_id'))
    )
    with op.batch_alter_table('unit_parameters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_unit_parameters_unit_id'), ['unit_id'], unique=False)

    op.create_table('unit_status_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('effective_on', sa.Date(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['production_units.id'], name=op.f('fk_unit_status_events_unit_id_production_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unit_status_events')),
    sa.UniqueConstraint('unit_id', 'effective_on', name=op.f('uq_unit_status_events_unit_id'))
    )
    with op.batch_alter_table('unit_status_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_unit_status_events_unit_id'), ['unit_id'], unique=False)

    _create_audit_triggers()


def downgrade() -> None:
    _drop_audit_triggers()
    with op.batch_alter_table('unit_status_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_unit_status_events_unit_id'))

    op.drop_table('unit_status_events')
    with op.batch_alter_table('unit_parameters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_unit_parameters_unit_id'))

    op.drop_table('unit_parameters')
    with op.batch_alter_table('unit_declarations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_unit_declarations_unit_id'))

    op.drop_table('unit_declarations')
    with op.batch_alter_table('unit_capacities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_unit_capacities_unit_id'))

    op.drop_table('unit_capacities')
    with op.batch_alter_table('production_units', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_production_units_site_id'))
        batch_op.drop_index(batch_op.f('ix_production_units_process_type'))

    op.drop_table('production_units')
    op.drop_table('users')
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sites_enterprise_id'))
        batch_op.drop_index(batch_op.f('ix_sites_division_code'))

    op.drop_table('sites')
    with op.batch_alter_table('enterprises', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enterprises_park_id'))
        batch_op.drop_index(batch_op.f('ix_enterprises_name'))
        batch_op.drop_index(batch_op.f('ix_enterprises_group_id'))
        batch_op.drop_index(batch_op.f('ix_enterprises_division_code'))

    op.drop_table('enterprises')
    with op.batch_alter_table('parks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parks_division_code'))

    op.drop_table('parks')
    with op.batch_alter_table('registry_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_registry_versions_lookup')

    op.drop_table('registry_versions')
    op.drop_table('enterprise_groups')
    with op.batch_alter_table('divisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_divisions_parent_code'))

    op.drop_table('divisions')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_entity'))
        batch_op.drop_index(batch_op.f('ix_audit_log_division_code'))
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')
