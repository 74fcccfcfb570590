"""Monitoring: the measurements' data-time index and the raw packets' receipt-time index become BRIN on PostgreSQL.

Both columns only serve range scans over large stretches of the table (retention deletes everything older than a
cutoff; packets are listed by receipt time), and rows arrive very nearly in time order, so a block-range index
answers those scans while costing almost nothing per inserted row. The B-trees they replace cost ≈ 5 µs of the
database's CPU per nine-factor packet on COPY (measured, see docs/benchmarks.md, HJ 212 ingest). Series reads by
point keep their B-trees. SQLite has no BRIN: there the indexes stay as they are.

Revision ID: 0011_monitoring_brin_indexes
Revises: 0007_market_trading_days (the head of the monitoring chain 0002 → 0005 → 0006 → 0007)
"""
from alembic import op


revision = "0011_monitoring_brin_indexes"
down_revision = "0007_market_trading_days"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_monitoring_measurements_data_time", "monitoring_measurements", "data_time"),
    ("ix_monitoring_raw_packets_received", "monitoring_raw_packets", "received_at"),
)


def _recreate(using: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table, column in INDEXES:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, [column], postgresql_using=using)


def upgrade() -> None:
    _recreate("brin")


def downgrade() -> None:
    _recreate("btree")
