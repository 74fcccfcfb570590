"""Policy: a stored verdict keeps why a rule did not apply (the excluding scope dimension, the unit's value, the rule's).

``not_applicable`` verdicts are now stored for rules that name a unit's metal or process type but exclude it by
another scope condition; ``excluded`` holds {"dimension", "unit", "scope"} for them and is NULL for every other verdict,
so rows of earlier runs stay valid as they are.

Revision ID: 0009_policy_not_applicable
Revises: 0004_policy
"""
from alembic import op
import sqlalchemy as sa


revision = "0009_policy_not_applicable"
# The chain has one branch per context; this column belongs to the policy branch's table, so it follows 0004_policy.
down_revision = "0004_policy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("compliance_verdicts") as batch_op:
        batch_op.add_column(sa.Column("excluded", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("compliance_verdicts") as batch_op:
        batch_op.drop_column("excluded")
