"""Core: the audit log is read by record (a record's history, whether a receipt was ever transferred), so it gets an
index on (entity, entity_id); without it such a read scans every entry of the entity type, which grows with history.

Revision ID: 0010_audit_entity_index
Revises: 0001 (the core's own branch, beside the contexts')
"""
from alembic import op


revision = "0010_audit_entity_index"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_log_entity_record", "audit_log", ["entity", "entity_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_entity_record", table_name="audit_log")
