"""Rows one transaction has looked up, held for the rest of that transaction.

The session's identity map holds unchanged rows only weakly, so without this the same account, product, warehouse
or receipt is read again a few lines later (the order path did so for each receipt view and each ledger account).
Nothing outlives the transaction: a new one (after a commit or a rollback) starts afresh, so what is held is never
older than what the transaction itself could read, and changes the transaction makes go to the held objects.
"""
from __future__ import annotations

from sqlalchemy import bindparam, event, inspect as sa_inspect, select
from sqlalchemy.orm import Session

from ingot.market.models import Product, Receipt, TradingAccount

_KEY = "market_rows"


def held(session: Session) -> dict:
    transaction = session.get_transaction()
    kept = session.info.get(_KEY)
    if kept is None or kept[0] is not transaction:
        kept = session.info[_KEY] = (transaction, {})
    return kept[1]


def keep(session: Session, row):
    """Hold `row` by id and by its immutable natural key (engine id, product code, receipt number)."""
    rows = held(session)
    rows[(type(row), row.id)] = row
    kind = type(row)
    if kind is TradingAccount:
        rows[(TradingAccount, "engine_id", row.engine_id)] = row
    elif kind is Product:
        rows[(Product, "code", row.code)] = row
    elif kind is Receipt:
        rows[(Receipt, "number", row.number)] = row
    return row


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_savepoint(session: Session, rolled_back) -> None:
    """A savepoint rolled back (a group commit's refused request) expunges the rows it added and expires those it
    changed: rows held since may be among them, so the transaction starts holding afresh."""
    if rolled_back.nested:
        session.info.pop(_KEY, None)


_BY_ID: dict = {}


def _by_id(model):
    """`SELECT ... WHERE id = :ident` for `model`, built once (`Session.get` builds and keys a new statement on each
    load, which cost more than running it)."""
    statement = _BY_ID.get(model)
    if statement is None:
        statement = _BY_ID[model] = select(model).where(model.__mapper__.primary_key[0] == bindparam("ident"))
    return statement


def get(session: Session, model, ident):
    """The row of `model` with primary key `ident` (or None), as `Session.get` would give it."""
    row = held(session).get((model, ident))
    if row is None:
        row = session.identity_map.get(session.identity_key(model, ident))
        if row is None or sa_inspect(row).expired_attributes:
            row = session.scalars(_by_id(model), {"ident": ident}).first()
        if row is not None:
            keep(session, row)
    return row


def forget(session: Session, model, ident, natural_key: tuple | None = None) -> None:
    """A Core statement has just changed the row of `model` with primary key `ident`: drop it from what this
    transaction holds and expire the session's copy (if any), so that the next read sees the new values."""
    rows = held(session)
    rows.pop((model, ident), None)
    if natural_key is not None:
        rows.pop((model, *natural_key), None)
    row = session.identity_map.get(session.identity_key(model, ident))
    if row is not None:
        session.expire(row)
