"""Market: trading days as application state, and the opening call auction as a versioned rule.

`market_trading_days` records each trading day (open / ended, when and by whom it ended, the settlement prices and
statements its end of day wrote, the cash reconciliation's summary). Until now an ended day was recognised by its
`market_end_of_day` audit entry; the audit log stays the audit, and the upgrade backfills the table from those
entries so that a day which had ended stays ended. Days with trades but no end of day are recorded as open.

`market_product_versions.opening_auction` ("HH:MM-HH:MM" or NULL) lets a version declare an opening call auction
for the session scheduler; existing versions have none.

Revision ID: 0007_market_trading_days
Revises: 0006_monitoring_commands (and needs 0003_market)
"""
from alembic import op
import sqlalchemy as sa
import ingot.core.db


revision = "0007_market_trading_days"
down_revision = "0006_monitoring_commands"
branch_labels = None
depends_on = "0003_market"


def upgrade() -> None:
    op.create_table(
        "market_trading_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("opened_at", ingot.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", ingot.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_by_id", sa.Integer(), nullable=True),
        sa.Column("ended_by", sa.String(length=64), nullable=True),
        sa.Column("settlement_prices", sa.JSON(), nullable=False),
        sa.Column("statements", sa.Integer(), nullable=False),
        sa.Column("reconciliation", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_market_trading_days")),
    )
    with op.batch_alter_table("market_product_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opening_auction", sa.String(length=11), nullable=True))
    _backfill()


def _backfill() -> None:
    bind = op.get_bind()
    audit = sa.table("audit_log", sa.column("id", sa.Integer), sa.column("at", ingot.core.db.UTCDateTime()),
                     sa.column("actor_id", sa.Integer), sa.column("actor", sa.String), sa.column("entity", sa.String),
                     sa.column("entity_id", sa.String), sa.column("action", sa.String),
                     sa.column("after", sa.JSON))
    trades = sa.table("market_trades", sa.column("trade_day", sa.Date), sa.column("at", ingot.core.db.UTCDateTime()))
    days = sa.table("market_trading_days", sa.column("day", sa.Date), sa.column("state", sa.String),
                    sa.column("opened_at", ingot.core.db.UTCDateTime()), sa.column("ended_at", ingot.core.db.UTCDateTime()),
                    sa.column("ended_by_id", sa.Integer), sa.column("ended_by", sa.String),
                    sa.column("settlement_prices", sa.JSON), sa.column("statements", sa.Integer),
                    sa.column("reconciliation", sa.JSON))
    rows: dict = {}
    for day, opened_at in bind.execute(sa.select(trades.c.trade_day, sa.func.min(trades.c.at))
                                       .group_by(trades.c.trade_day)):
        rows[_as_date(day)] = {"day": _as_date(day), "state": "open", "opened_at": opened_at, "ended_at": None,
                               "ended_by_id": None, "ended_by": None, "settlement_prices": {}, "statements": 0,
                               "reconciliation": {}}
    ended = bind.execute(sa.select(audit.c.at, audit.c.actor_id, audit.c.actor, audit.c.entity_id, audit.c.after)
                         .where(audit.c.entity == "market_end_of_day", audit.c.action == "run").order_by(audit.c.id))
    for at, actor_id, actor, entity_id, after in ended:
        day = _as_date(entity_id)
        after = after or {}
        row = rows.setdefault(day, {"day": day, "opened_at": None})
        row.update(state="ended", ended_at=at, ended_by_id=actor_id, ended_by=actor,
                   settlement_prices=after.get("prices") or {}, statements=int(after.get("statements") or 0),
                   reconciliation=after.get("reconciliation") or {})
    if rows:
        op.bulk_insert(days, [rows[day] for day in sorted(rows)])


def _as_date(value):
    import datetime

    return value if isinstance(value, datetime.date) else datetime.date.fromisoformat(str(value)[:10])


def downgrade() -> None:
    with op.batch_alter_table("market_product_versions", schema=None) as batch_op:
        batch_op.drop_column("opening_auction")
    op.drop_table("market_trading_days")
