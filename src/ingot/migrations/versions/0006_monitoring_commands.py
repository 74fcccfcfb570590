"""Monitoring: the queue of commands the platform sends to devices (time calibration, intervals, history retrieval).

Revision ID: 0006_monitoring_commands
Revises: 0005_monitoring_exact_readings
"""
from alembic import op
import sqlalchemy as sa

import ingot.core.db

revision = "0006_monitoring_commands"
down_revision = "0005_monitoring_exact_readings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_commands",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("point_id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("division_code", sa.String(length=6), nullable=False),
        sa.Column("mn", sa.String(length=24), nullable=False),
        sa.Column("cn", sa.String(length=4), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=False),
        sa.Column("requested_at", ingot.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("qn", sa.String(length=20), nullable=True),
        sa.Column("sent_at", ingot.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", ingot.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", ingot.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("qn_rtn", sa.Integer(), nullable=True),
        sa.Column("exe_rtn", sa.Integer(), nullable=True),
        sa.Column("reply", sa.JSON(), nullable=True),
        sa.Column("detail", sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(["point_id"], ["monitoring_points.id"],
                                name=op.f("fk_monitoring_commands_point_id_monitoring_points"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitoring_commands")),
    )
    with op.batch_alter_table("monitoring_commands", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_monitoring_commands_enterprise_id"), ["enterprise_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_monitoring_commands_division_code"), ["division_code"], unique=False)
        batch_op.create_index("ix_monitoring_commands_state", ["state", "id"], unique=False)
        batch_op.create_index("ix_monitoring_commands_point", ["point_id", "requested_at"], unique=False)


def downgrade() -> None:
    op.drop_table("monitoring_commands")
