"""The double-entry ledger: money (CNY, in fen) and metal (per product, in grams) move only through balanced entries.

Sign convention: every entry's postings sum to zero per asset. Money enters from the custodian bank's account, which
therefore carries the negative of all client and centre money; metal enters from a warehouse's `warehouse_in` account
(negative: grams registered) and leaves to `load_out` or `invalidated` (positive: grams gone out of the market).

Invariants, asserted at end of day over the whole book (`check_invariants`) and after every settlement batch over
what the batch touched (`check_batch_invariants`):
* per asset, the balances of all accounts sum to zero, and every cached balance equals the sum of its postings;
* per product, grams on live receipts == grams registered in − grams delivered out (load-out and invalidation);
* per trading account and product, the metal balance equals the grams of the live receipts it owns.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import bindparam, func, select, tuple_
from sqlalchemy.orm import Session

from ingot.core.timeutil import utcnow
from ingot.market.models import LedgerAccount, LedgerEntry, Posting, Product, Receipt

CNY = "CNY"
BANK = "bank"
CENTRE = "centre"
CASH = "cash"
METAL = "metal"
WAREHOUSE_IN = "warehouse_in"
LOAD_OUT = "load_out"
INVALIDATED = "invalidated"
LIVE_RECEIPT_STATES = ("registered", "encumbered", "transferred")
_OUT_KINDS = (LOAD_OUT, INVALIDATED)


class LedgerInvariantBroken(AssertionError):
    """The books disagree with themselves or with the receipt registry; a bug, never a user error."""


class UnbalancedEntry(ValueError):
    """A programming error: an entry whose postings do not sum to zero per asset."""


def ledger_account(session: Session, kind: str, asset: str, holder_id: int = 0) -> LedgerAccount:
    found = session.scalar(
        select(LedgerAccount).where(LedgerAccount.kind == kind, LedgerAccount.asset == asset,
                                    LedgerAccount.holder_id == holder_id)
    )
    if found is None:
        found = LedgerAccount(kind=kind, asset=asset, holder_id=holder_id, balance=0)
        session.add(found)
        session.flush()
    return found


def ledger_accounts(session: Session, keys: list[tuple[str, str, int]]) -> list[LedgerAccount]:
    """The existing ledger accounts among (kind, asset, holder) `keys`, in one statement; none is opened."""
    if not keys:
        return []
    return list(session.scalars(_ACCOUNTS_BY_KEY, {"keys": [tuple(key) for key in keys]}))


# Built once: a settlement runs these on every trade, and building and keying them cost about as much as running them.
_ACCOUNTS_BY_KEY = select(LedgerAccount).where(
    tuple_(LedgerAccount.kind, LedgerAccount.asset, LedgerAccount.holder_id).in_(bindparam("keys", expanding=True)))
_ASSET_TOTALS = select(LedgerAccount.asset, func.sum(LedgerAccount.balance)).group_by(LedgerAccount.asset)
_TOUCHED = select(LedgerAccount.id, LedgerAccount.kind, LedgerAccount.asset, LedgerAccount.holder_id,
                  LedgerAccount.balance).where(LedgerAccount.id.in_(bindparam("ids", expanding=True)))
_POSTED = (select(Posting.account_id, func.sum(Posting.amount))
           .where(Posting.account_id.in_(bindparam("ids", expanding=True))).group_by(Posting.account_id))
_HOLDER_GRAMS = (select(func.coalesce(func.sum(Receipt.net_grams), 0)).join(Product, Product.id == Receipt.product_id)
                 .where(Receipt.owner_account_id == bindparam("holder_id"), Product.code == bindparam("code"),
                        Receipt.status.in_(LIVE_RECEIPT_STATES)))
_PRODUCT_GRAMS = (select(func.coalesce(func.sum(Receipt.net_grams), 0)).join(Product, Product.id == Receipt.product_id)
                  .where(Product.code == bindparam("code"), Receipt.status.in_(LIVE_RECEIPT_STATES)))
_IN_AND_OUT = select(LedgerAccount.kind, LedgerAccount.balance).where(
    LedgerAccount.asset == bindparam("code"), LedgerAccount.kind.in_((WAREHOUSE_IN, LOAD_OUT, INVALIDATED)))


def cash_of(session: Session, trading_account_id: int) -> LedgerAccount:
    return ledger_account(session, CASH, CNY, trading_account_id)


def metal_of(session: Session, trading_account_id: int, product_code: str) -> LedgerAccount:
    return ledger_account(session, METAL, product_code, trading_account_id)


def post(
    session: Session,
    kind: str,
    reference: str,
    postings: list[tuple[LedgerAccount, int]],
    *,
    memo: str = "",
    at: datetime | None = None,
) -> LedgerEntry:
    """Write one balanced entry; zero amounts are dropped, and an entry that moves nothing is refused."""
    lines = [(account, amount) for account, amount in postings if amount]
    if not lines:
        raise UnbalancedEntry(f"entry {kind}/{reference} moves nothing")
    totals: dict[str, int] = defaultdict(int)
    for account, amount in lines:
        if type(amount) is not int:
            raise UnbalancedEntry(f"entry {kind}/{reference}: amounts are integers (fen or grams), got {amount!r}")
        totals[account.asset] += amount
    unbalanced = {asset: total for asset, total in totals.items() if total}
    if unbalanced:
        raise UnbalancedEntry(f"entry {kind}/{reference} does not balance: {unbalanced}")
    entry = LedgerEntry(kind=kind, reference=reference, memo=memo, at=at or utcnow())
    session.add(entry)
    session.flush()
    for account, amount in lines:
        session.add(Posting(entry_id=entry.id, account_id=account.id, amount=amount))
        account.balance += amount
    session.flush()
    return entry


def balance(session: Session, kind: str, asset: str, holder_id: int = 0) -> int:
    value = session.scalar(
        select(LedgerAccount.balance).where(LedgerAccount.kind == kind, LedgerAccount.asset == asset,
                                            LedgerAccount.holder_id == holder_id)
    )
    return int(value or 0)


def balance_at(session: Session, account: LedgerAccount, moment: datetime) -> int:
    """The account's balance after every entry dated before `moment`."""
    value = session.scalar(
        select(func.coalesce(func.sum(Posting.amount), 0))
        .join(LedgerEntry, LedgerEntry.id == Posting.entry_id)
        .where(Posting.account_id == account.id, LedgerEntry.at < moment)
    )
    return int(value or 0)


def check_invariants(session: Session) -> None:
    """Raise LedgerInvariantBroken naming every broken invariant; return quietly when the books hold."""
    session.flush()
    problems: list[str] = []

    for asset, total in session.execute(
        select(LedgerAccount.asset, func.sum(LedgerAccount.balance)).group_by(LedgerAccount.asset)
    ):
        if int(total or 0) != 0:
            problems.append(f"asset {asset}: balances sum to {int(total)}, not 0")

    posted = dict(
        session.execute(select(Posting.account_id, func.sum(Posting.amount)).group_by(Posting.account_id)).all()
    )
    for account_id, cached in session.execute(select(LedgerAccount.id, LedgerAccount.balance)):
        if int(posted.get(account_id) or 0) != int(cached):
            problems.append(f"ledger account {account_id}: cached balance {cached} != postings {posted.get(account_id)}")

    live_by_owner: dict[tuple[int, str], int] = defaultdict(int)
    live_by_product: dict[str, int] = defaultdict(int)
    for owner_id, code, grams in session.execute(
        select(Receipt.owner_account_id, Product.code, func.sum(Receipt.net_grams))
        .join(Product, Product.id == Receipt.product_id)
        .where(Receipt.status.in_(LIVE_RECEIPT_STATES))
        .group_by(Receipt.owner_account_id, Product.code)
    ):
        live_by_owner[(owner_id, code)] += int(grams)
        live_by_product[code] += int(grams)

    registered_in: dict[str, int] = defaultdict(int)
    gone_out: dict[str, int] = defaultdict(int)
    held: dict[tuple[int, str], int] = {}
    for kind, asset, holder_id, amount in session.execute(
        select(LedgerAccount.kind, LedgerAccount.asset, LedgerAccount.holder_id, LedgerAccount.balance)
        .where(LedgerAccount.asset != CNY)
    ):
        if kind == WAREHOUSE_IN:
            registered_in[asset] += -int(amount)
        elif kind in _OUT_KINDS:
            gone_out[asset] += int(amount)
        elif kind == METAL:
            held[(holder_id, asset)] = int(amount)
    for code in set(registered_in) | set(gone_out) | set(live_by_product):
        expected = registered_in[code] - gone_out[code]
        if live_by_product[code] != expected:
            problems.append(
                f"product {code}: {live_by_product[code]} g on live receipts != {registered_in[code]} g registered in"
                f" − {gone_out[code]} g delivered out"
            )
    for key in set(held) | set(live_by_owner):
        if held.get(key, 0) != live_by_owner.get(key, 0):
            problems.append(f"account {key[0]} product {key[1]}: ledger {held.get(key, 0)} g != receipts "
                            f"{live_by_owner.get(key, 0)} g")
    if problems:
        raise LedgerInvariantBroken("; ".join(problems))


def check_batch_invariants(session: Session, ledger_account_ids: set[int]) -> None:
    """The invariants after a settlement batch that posted to `ledger_account_ids`, without rescanning the whole
    book at every trade (the whole-book check costs time in proportion to every posting and receipt ever made).

    Checked in full: every asset's balances (all accounts, the custodian's and the centre's included) sum to zero.
    For the accounts the batch posted to: the cached balance equals the sum of the account's postings, and each
    metal account holds exactly the grams of the live receipts its owner holds of that product. For the products the
    batch moved: grams on live receipts == grams registered in − grams delivered out. An account the batch did not
    post to has not changed, so it still holds what the previous check or end of day found."""
    session.flush()
    problems: list[str] = []
    connection = session.connection()
    for asset, total in connection.execute(_ASSET_TOTALS):
        if int(total or 0) != 0:
            problems.append(f"asset {asset}: balances sum to {int(total)}, not 0")
    ids = sorted(ledger_account_ids)
    touched = connection.execute(_TOUCHED, {"ids": ids}).all() if ids else []
    posted = dict(connection.execute(_POSTED, {"ids": ids}).all()) if ids else {}
    products = set()
    for account_id, kind, asset, holder_id, cached in touched:
        if int(posted.get(account_id) or 0) != int(cached):
            problems.append(f"ledger account {account_id}: cached balance {cached} != postings {posted.get(account_id)}")
        if asset == CNY:
            continue
        products.add(asset)
        if kind == METAL:
            grams = connection.execute(_HOLDER_GRAMS, {"holder_id": holder_id, "code": asset}).scalar()
            if int(grams or 0) != int(cached):
                problems.append(f"account {holder_id} product {asset}: ledger {int(cached)} g != receipts {int(grams or 0)} g")
    for code in sorted(products):
        live = int(connection.execute(_PRODUCT_GRAMS, {"code": code}).scalar() or 0)
        registered_in = gone_out = 0
        for kind, amount in connection.execute(_IN_AND_OUT, {"code": code}):
            if kind == WAREHOUSE_IN:
                registered_in += -int(amount)
            else:
                gone_out += int(amount)
        if live != registered_in - gone_out:
            problems.append(f"product {code}: {live} g on live receipts != {registered_in} g registered in"
                            f" − {gone_out} g delivered out")
    if problems:
        raise LedgerInvariantBroken("; ".join(problems))


def entries_for(session: Session, ledger_account_id: int, start: datetime, end: datetime) -> list[tuple[LedgerEntry, int]]:
    rows = session.execute(
        select(LedgerEntry, Posting.amount)
        .join(Posting, Posting.entry_id == LedgerEntry.id)
        .where(Posting.account_id == ledger_account_id, LedgerEntry.at >= start, LedgerEntry.at < end)
        .order_by(LedgerEntry.id)
    )
    return [(entry, int(amount)) for entry, amount in rows]
