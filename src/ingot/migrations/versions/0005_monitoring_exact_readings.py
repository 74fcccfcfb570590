"""Monitoring: measured values exact on SQLite too (decimal text instead of binary floats).

PostgreSQL already stores them as NUMERIC(24, 6), and nothing changes there. SQLite has no decimal type: the columns
were NUMERIC (so SQLite kept REAL floats); they become TEXT holding the decimal rounded to 6 places, the form
ingot.monitoring.models.ExactReading writes and reads. Existing floats are rewritten as their 6-place decimal, which
is the value they came from for every reading of up to 15 significant digits.

Revision ID: 0005_monitoring_exact_readings
Revises: 0002_monitoring
"""
from alembic import op
import sqlalchemy as sa


revision = "0005_monitoring_exact_readings"
down_revision = "0002_monitoring"
branch_labels = None
depends_on = None

VALUE_COLUMNS = ("rtd", "avg", "min", "max", "zs_rtd", "zs_avg", "zs_min", "zs_max", "cou")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("monitoring_measurements", recreate="always") as batch_op:
        for column in VALUE_COLUMNS:
            batch_op.alter_column(column, type_=sa.Text(), existing_type=sa.Numeric(precision=24, scale=6),
                                  existing_nullable=True)
    for column in VALUE_COLUMNS:
        op.execute(f"UPDATE monitoring_measurements SET {column} = printf('%.6f', CAST({column} AS REAL)) "
                   f"WHERE {column} IS NOT NULL")
        op.execute(f"UPDATE monitoring_measurements SET {column} = '0.000000' WHERE {column} = '-0.000000'")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("monitoring_measurements", recreate="always") as batch_op:
        for column in VALUE_COLUMNS:
            batch_op.alter_column(column, type_=sa.Numeric(precision=24, scale=6), existing_type=sa.Text(),
                                  existing_nullable=True)
