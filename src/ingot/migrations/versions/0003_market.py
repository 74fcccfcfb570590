"""Trading centre: products and versions, members, clients and accounts, warehouses and receipts, the double-entry
ledger, custodian-bank lines and reconciliations, the matching core's journal and snapshots, orders, trades,
settlement prices, statements and alarms.

Revision ID: 0003_market
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import ingot.core.db


revision = "0003_market"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('market_alarms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('message_zh', sa.String(length=512), nullable=False),
    sa.Column('message_en', sa.String(length=512), nullable=False),
    sa.Column('division_code', sa.String(length=6), nullable=True),
    sa.Column('raised_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('cleared_at', ingot.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_alarms'))
    )
    op.create_table('market_engine_commands',
    sa.Column('sequence', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sequence', name=op.f('pk_market_engine_commands'))
    )
    op.create_table('market_engine_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.BigInteger(), nullable=False),
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_engine_head'))
    )
    op.create_table('market_engine_snapshots',
    sa.Column('sequence', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sequence', name=op.f('pk_market_engine_snapshots'))
    )
    op.create_table('market_ledger_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('asset', sa.String(length=16), nullable=False),
    sa.Column('holder_id', sa.Integer(), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_ledger_accounts')),
    sa.UniqueConstraint('kind', 'asset', 'holder_id', name='uq_market_ledger_accounts_ledger_account')
    )
    op.create_table('market_ledger_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('memo', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_ledger_entries'))
    )
    with op.batch_alter_table('market_ledger_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_ledger_entries_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_market_ledger_entries_reference'), ['reference'], unique=False)

    op.create_table('market_products',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name_zh', sa.String(length=128), nullable=False),
    sa.Column('name_en', sa.String(length=128), nullable=False),
    sa.Column('metal', sa.String(length=32), nullable=False),
    sa.Column('price_unit', sa.String(length=8), nullable=False),
    sa.Column('grams_per_price_unit', sa.Integer(), nullable=False),
    sa.Column('units_per_lot', sa.Integer(), nullable=False),
    sa.Column('reference_price_fen', sa.BigInteger(), nullable=False),
    sa.Column('buyer_fee_per_lot_fen', sa.Integer(), nullable=False),
    sa.Column('buyer_fee_ppm', sa.Integer(), nullable=False),
    sa.Column('seller_fee_per_lot_fen', sa.Integer(), nullable=False),
    sa.Column('seller_fee_ppm', sa.Integer(), nullable=False),
    sa.Column('suspended', sa.Boolean(), nullable=False),
    sa.Column('created_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_products')),
    sa.UniqueConstraint('code', name=op.f('uq_market_products_code'))
    )
    op.create_table('market_warehouses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name_zh', sa.String(length=128), nullable=False),
    sa.Column('name_en', sa.String(length=128), nullable=False),
    sa.Column('division_code', sa.String(length=6), nullable=False),
    sa.Column('address', sa.String(length=256), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_warehouses')),
    sa.UniqueConstraint('code', name=op.f('uq_market_warehouses_code'))
    )
    op.create_table('market_postings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['market_ledger_accounts.id'], name=op.f('fk_market_postings_account_id_market_ledger_accounts')),
    sa.ForeignKeyConstraint(['entry_id'], ['market_ledger_entries.id'], name=op.f('fk_market_postings_entry_id_market_ledger_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_postings'))
    )
    with op.batch_alter_table('market_postings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_postings_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_market_postings_entry_id'), ['entry_id'], unique=False)

    op.create_table('market_product_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('notice_ref', sa.String(length=64), nullable=False),
    sa.Column('notice_date', sa.Date(), nullable=False),
    sa.Column('effective_on', sa.Date(), nullable=False),
    sa.Column('grade_zh', sa.String(length=256), nullable=False),
    sa.Column('grade_en', sa.String(length=256), nullable=False),
    sa.Column('quality_spec', sa.JSON(), nullable=False),
    sa.Column('tick_fen', sa.Integer(), nullable=False),
    sa.Column('band_ppm', sa.Integer(), nullable=False),
    sa.Column('max_order_lots', sa.Integer(), nullable=False),
    sa.Column('settlement_min_lots', sa.Integer(), nullable=False),
    sa.Column('sessions', sa.JSON(), nullable=False),
    sa.Column('deliverable_warehouses', sa.JSON(), nullable=False),
    sa.Column('created_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['market_products.id'], name=op.f('fk_market_product_versions_product_id_market_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_product_versions')),
    sa.UniqueConstraint('product_id', 'effective_on', name='uq_market_product_versions_product_effective'),
    sa.UniqueConstraint('product_id', 'version', name='uq_market_product_versions_product_version')
    )
    with op.batch_alter_table('market_product_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_product_versions_product_id'), ['product_id'], unique=False)

    op.create_table('market_session_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['market_products.id'], name=op.f('fk_market_session_log_product_id_market_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_session_log'))
    )
    with op.batch_alter_table('market_session_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_session_log_product_id'), ['product_id'], unique=False)

    op.create_table('market_settlement_prices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('price_fen', sa.BigInteger(), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('volume_lots', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['market_products.id'], name=op.f('fk_market_settlement_prices_product_id_market_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_settlement_prices')),
    sa.UniqueConstraint('product_id', 'day', name='uq_market_settlement_prices_product_day')
    )
    with op.batch_alter_table('market_settlement_prices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_settlement_prices_product_id'), ['product_id'], unique=False)

    op.create_table('market_stock_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('warehouse_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('physical_grams', sa.BigInteger(), nullable=False),
    sa.Column('registry_grams', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['market_products.id'], name=op.f('fk_market_stock_reports_product_id_market_products')),
    sa.ForeignKeyConstraint(['warehouse_id'], ['market_warehouses.id'], name=op.f('fk_market_stock_reports_warehouse_id_market_warehouses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_stock_reports')),
    sa.UniqueConstraint('warehouse_id', 'product_id', 'day', name='uq_market_stock_reports_warehouse_product_day')
    )
    with op.batch_alter_table('market_stock_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_stock_reports_warehouse_id'), ['warehouse_id'], unique=False)

    op.create_table('market_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('enterprise_id', sa.Integer(), nullable=True),
    sa.Column('division_code', sa.String(length=6), nullable=False),
    sa.Column('suspended', sa.Boolean(), nullable=False),
    sa.Column('created_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_market_members_enterprise_id_enterprises')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_members')),
    sa.UniqueConstraint('code', name=op.f('uq_market_members_code'))
    )
    op.create_table('market_clients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('created_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['market_members.id'], name=op.f('fk_market_clients_member_id_market_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_clients')),
    sa.UniqueConstraint('member_id', 'code', name='uq_market_clients_member_client')
    )
    with op.batch_alter_table('market_clients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_clients_member_id'), ['member_id'], unique=False)

    op.create_table('market_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('engine_id', sa.String(length=32), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=True),
    sa.Column('created_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['market_clients.id'], name=op.f('fk_market_accounts_client_id_market_clients')),
    sa.ForeignKeyConstraint(['member_id'], ['market_members.id'], name=op.f('fk_market_accounts_member_id_market_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_accounts')),
    sa.UniqueConstraint('engine_id', name=op.f('uq_market_accounts_engine_id')),
    sa.UniqueConstraint('member_id', 'client_id', name='uq_market_accounts_member_client_account')
    )
    with op.batch_alter_table('market_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_accounts_member_id'), ['member_id'], unique=False)

    op.create_table('market_users',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.Column('client_id', sa.Integer(), nullable=True),
    sa.Column('warehouse_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['market_clients.id'], name=op.f('fk_market_users_client_id_market_clients')),
    sa.ForeignKeyConstraint(['member_id'], ['market_members.id'], name=op.f('fk_market_users_member_id_market_members')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_market_users_user_id_users')),
    sa.ForeignKeyConstraint(['warehouse_id'], ['market_warehouses.id'], name=op.f('fk_market_users_warehouse_id_market_warehouses')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_market_users'))
    )
    op.create_table('market_bank_balances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('closing_fen', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['market_accounts.id'], name=op.f('fk_market_bank_balances_account_id_market_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_bank_balances')),
    sa.UniqueConstraint('account_id', 'day', name='uq_market_bank_balances_account_day')
    )
    with op.batch_alter_table('market_bank_balances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_bank_balances_account_id'), ['account_id'], unique=False)

    op.create_table('market_bank_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bank_ref', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('value_date', sa.Date(), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('matched_movement_id', sa.Integer(), nullable=True),
    sa.Column('imported_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['market_accounts.id'], name=op.f('fk_market_bank_lines_account_id_market_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_bank_lines')),
    sa.UniqueConstraint('bank_ref', name=op.f('uq_market_bank_lines_bank_ref'))
    )
    with op.batch_alter_table('market_bank_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_bank_lines_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_market_bank_lines_value_date'), ['value_date'], unique=False)

    op.create_table('market_cash_reconciliations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('ledger_fen', sa.BigInteger(), nullable=False),
    sa.Column('bank_fen', sa.BigInteger(), nullable=True),
    sa.Column('unmatched_lines', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['market_accounts.id'], name=op.f('fk_market_cash_reconciliations_account_id_market_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_cash_reconciliations')),
    sa.UniqueConstraint('account_id', 'day', name='uq_market_cash_reconciliations_account_day')
    )
    with op.batch_alter_table('market_cash_reconciliations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_cash_reconciliations_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_market_cash_reconciliations_day'), ['day'], unique=False)

    op.create_table('market_orders',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('side', sa.String(length=1), nullable=False),
    sa.Column('order_type', sa.String(length=8), nullable=False),
    sa.Column('tif', sa.String(length=4), nullable=False),
    sa.Column('price_fen', sa.BigInteger(), nullable=False),
    sa.Column('lots', sa.Integer(), nullable=False),
    sa.Column('open_lots', sa.Integer(), nullable=False),
    sa.Column('filled_lots', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('cancel_reason', sa.String(length=32), nullable=True),
    sa.Column('receipt_numbers', sa.JSON(), nullable=False),
    sa.Column('placed_by', sa.Integer(), nullable=False),
    sa.Column('created_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['market_accounts.id'], name=op.f('fk_market_orders_account_id_market_accounts')),
    sa.ForeignKeyConstraint(['product_id'], ['market_products.id'], name=op.f('fk_market_orders_product_id_market_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_orders')),
    sa.UniqueConstraint('account_id', 'idempotency_key', name='uq_market_orders_account_key')
    )
    with op.batch_alter_table('market_orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_orders_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_market_orders_product_id'), ['product_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_market_orders_status'), ['status'], unique=False)

    op.create_table('market_receipts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('warehouse_id', sa.Integer(), nullable=False),
    sa.Column('owner_account_id', sa.Integer(), nullable=False),
    sa.Column('grade', sa.String(length=64), nullable=False),
    sa.Column('lot_no', sa.String(length=64), nullable=False),
    sa.Column('brand', sa.String(length=64), nullable=False),
    sa.Column('net_grams', sa.BigInteger(), nullable=False),
    sa.Column('lots', sa.Integer(), nullable=False),
    sa.Column('assay_certificate', sa.String(length=64), nullable=False),
    sa.Column('assay', sa.JSON(), nullable=False),
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('lien_kind', sa.String(length=16), nullable=True),
    sa.Column('lien_ref', sa.String(length=64), nullable=True),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('registered_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_account_id'], ['market_accounts.id'], name=op.f('fk_market_receipts_owner_account_id_market_accounts')),
    sa.ForeignKeyConstraint(['parent_id'], ['market_receipts.id'], name=op.f('fk_market_receipts_parent_id_market_receipts')),
    sa.ForeignKeyConstraint(['product_id'], ['market_products.id'], name=op.f('fk_market_receipts_product_id_market_products')),
    sa.ForeignKeyConstraint(['warehouse_id'], ['market_warehouses.id'], name=op.f('fk_market_receipts_warehouse_id_market_warehouses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_receipts')),
    sa.UniqueConstraint('number', name=op.f('uq_market_receipts_number'))
    )
    with op.batch_alter_table('market_receipts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_receipts_owner_account_id'), ['owner_account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_market_receipts_product_id'), ['product_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_market_receipts_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_market_receipts_warehouse_id'), ['warehouse_id'], unique=False)

    op.create_table('market_statements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('opening_fen', sa.BigInteger(), nullable=False),
    sa.Column('deposits_fen', sa.BigInteger(), nullable=False),
    sa.Column('withdrawals_fen', sa.BigInteger(), nullable=False),
    sa.Column('bought_fen', sa.BigInteger(), nullable=False),
    sa.Column('sold_fen', sa.BigInteger(), nullable=False),
    sa.Column('fees_fen', sa.BigInteger(), nullable=False),
    sa.Column('closing_fen', sa.BigInteger(), nullable=False),
    sa.Column('metal', sa.JSON(), nullable=False),
    sa.Column('trades', sa.JSON(), nullable=False),
    sa.Column('at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['market_accounts.id'], name=op.f('fk_market_statements_account_id_market_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_statements')),
    sa.UniqueConstraint('account_id', 'day', name='uq_market_statements_account_day')
    )
    with op.batch_alter_table('market_statements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_statements_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_market_statements_day'), ['day'], unique=False)

    op.create_table('market_trades',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('trade_day', sa.Date(), nullable=False),
    sa.Column('price_fen', sa.BigInteger(), nullable=False),
    sa.Column('lots', sa.Integer(), nullable=False),
    sa.Column('notional_fen', sa.BigInteger(), nullable=False),
    sa.Column('buyer_fee_fen', sa.BigInteger(), nullable=False),
    sa.Column('seller_fee_fen', sa.BigInteger(), nullable=False),
    sa.Column('buy_order_id', sa.BigInteger(), nullable=False),
    sa.Column('sell_order_id', sa.BigInteger(), nullable=False),
    sa.Column('buyer_account_id', sa.Integer(), nullable=False),
    sa.Column('seller_account_id', sa.Integer(), nullable=False),
    sa.Column('aggressor', sa.String(length=1), nullable=False),
    sa.Column('delivered', sa.JSON(), nullable=False),
    sa.Column('settlement_entry_id', sa.Integer(), nullable=False),
    sa.Column('at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['buyer_account_id'], ['market_accounts.id'], name=op.f('fk_market_trades_buyer_account_id_market_accounts')),
    sa.ForeignKeyConstraint(['product_id'], ['market_products.id'], name=op.f('fk_market_trades_product_id_market_products')),
    sa.ForeignKeyConstraint(['seller_account_id'], ['market_accounts.id'], name=op.f('fk_market_trades_seller_account_id_market_accounts')),
    sa.ForeignKeyConstraint(['settlement_entry_id'], ['market_ledger_entries.id'], name=op.f('fk_market_trades_settlement_entry_id_market_ledger_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_trades'))
    )
    with op.batch_alter_table('market_trades', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_trades_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_market_trades_buyer_account_id'), ['buyer_account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_market_trades_product_id'), ['product_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_market_trades_seller_account_id'), ['seller_account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_market_trades_trade_day'), ['trade_day'], unique=False)

    op.create_table('market_cash_movements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('bank_line_id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('at', ingot.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['market_accounts.id'], name=op.f('fk_market_cash_movements_account_id_market_accounts')),
    sa.ForeignKeyConstraint(['bank_line_id'], ['market_bank_lines.id'], name=op.f('fk_market_cash_movements_bank_line_id_market_bank_lines')),
    sa.ForeignKeyConstraint(['entry_id'], ['market_ledger_entries.id'], name=op.f('fk_market_cash_movements_entry_id_market_ledger_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_cash_movements')),
    sa.UniqueConstraint('bank_line_id', name=op.f('uq_market_cash_movements_bank_line_id'))
    )
    with op.batch_alter_table('market_cash_movements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_cash_movements_account_id'), ['account_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('market_cash_movements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_market_cash_movements_account_id'))

    op.drop_table('market_cash_movements')
    with op.batch_alter_table('market_trades', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_market_trades_trade_day'))
        batch_op.drop_index(batch_op.f('ix_market_trades_seller_account_id'))
        batch_op.drop_index(batch_op.f('ix_market_trades_product_id'))
        batch_op.drop_index(batch_op.f('ix_market_trades_buyer_account_id'))
        batch_op.drop_index(batch_op.f('ix_market_trades_at'))

    op.drop_table('market_trades')
    with op.batch_alter_table('market_statements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_market_statements_day'))
        batch_op.drop_index(batch_op.f('ix_market_statements_account_id'))

    op.drop_table('market_statements')
    with op.batch_alter_table('market_receipts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_market_receipts_warehouse_id'))
        batch_op.drop_index(batch_op.f('ix_market_receipts_status'))
        batch_op.drop_index(batch_op.f('ix_market_receipts_product_id'))
        batch_op.drop_index(batch_op.f('ix_market_receipts_owner_account_id'))

    op.drop_table('market_receipts')
    with op.batch_alter_table('market_orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_market_orders_status'))
        batch_op.drop_index(batch_op.f('ix_market_orders_product_id'))
        batch_op.drop_index(batch_op.f('ix_market_orders_account_id'))

    op.drop_table('market_orders')
    with op.batch_alter_table('market_cash_reconciliations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_market_cash_reconciliations_day'))
        batch_op.drop_index(batch_op.f('ix_market_cash_reconciliations_account_id'))

    op.drop_table('market_cash_reconciliations')
    with op.batch_alter_table('market_bank_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_market_bank_lines_value_date'))
        batch_op.drop_index(batch_op.f('ix_market_bank_lines_account_id'))

    op.drop_table('market_bank_lines')
    with op.batch_alter_table('market_bank_balances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_market_bank_balances_account_id'))

    op.drop_table('market_bank_balances')
    op.drop_table('market_users')
    with op.batch_alter_table('market_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_market_accounts_member_id'))

    op.drop_table('market_accounts')
    with op.batch_alter_table('market_clients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_market_clients_member_id'))

    op.drop_table('market_clients')
    op.drop_table('market_members')
    with op.batch_alter_table('market_stock_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_market_stock_reports_warehouse_id'))

    op.drop_table('market_stock_reports')
    with op.batch_alter_table('market_settlement_prices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_market_settlement_prices_product_id'))

    op.drop_table('market_settlement_prices')
    with op.batch_alter_table('market_session_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_market_session_log_product_id'))

    op.drop_table('market_session_log')
    with op.batch_alter_table('market_product_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_market_product_versions_product_id'))

    op.drop_table('market_product_versions')
    with op.batch_alter_table('market_postings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_market_postings_entry_id'))
        batch_op.drop_index(batch_op.f('ix_market_postings_account_id'))

    op.drop_table('market_postings')
    op.drop_table('market_warehouses')
    op.drop_table('market_products')
    with op.batch_alter_table('market_ledger_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_market_ledger_entries_reference'))
        batch_op.drop_index(batch_op.f('ix_market_ledger_entries_at'))

    op.drop_table('market_ledger_entries')
    op.drop_table('market_ledger_accounts')
    op.drop_table('market_engine_snapshots')
    op.drop_table('market_engine_head')
    op.drop_table('market_engine_commands')
    op.drop_table('market_alarms')
