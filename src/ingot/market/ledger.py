"""The double-entry ledger: money (CNY, in fen) and metal (per product, in grams) move only through balanced entries.

Sign convention: every entry's postings sum to zero per asset. Money enters from the custodian bank's account, which
therefore carries the negative of all client and centre money; metal enters from a warehouse's `warehouse_in` account
(negative: grams registered) and leaves to `load_out` or `invalidated` (positive: grams gone out of the market).

Invariants, asserted at end of day over the whole book (`check_invariants`) and after every settlement batch over
what the batch changed (`check_batch_invariants`, see there why checking the batch's changes is enough):
* per asset, the balances of all accounts sum to zero, and every cached balance equals the sum of its postings;
* per product, grams on live receipts == grams registered in − grams delivered out (load-out and invalidation);
* per trading account and product, the metal balance equals the grams of the live receipts it owns.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, tuple_
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
    lines = _balanced_lines(kind, reference, postings)
    entry = LedgerEntry(kind=kind, reference=reference, memo=memo, at=at or utcnow())
    session.add(entry)
    session.flush()
    for account, amount in lines:
        session.add(Posting(entry_id=entry.id, account_id=account.id, amount=amount))
        account.balance += amount
    session.flush()
    return entry


def _balanced_lines(kind: str, reference: str, postings) -> list:
    """The non-zero postings of an entry, refused unless they are integers that sum to zero per asset."""
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
    return lines


@dataclass
class SettlementBatch:
    """What one command's settlements changed, for `check_batch_invariants`: the entries written, each ledger
    account's balance before the batch's first posting to it and the sum the batch posted to it, and each receipt
    the batch read or made as it was before the batch (product code, owner, status, grams; None: made by it)."""

    entries: list[int] = field(default_factory=list)
    balances_before: dict[int, int] = field(default_factory=dict)
    posted: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    receipts_before: dict[int, tuple[str, int, str, int] | None] = field(default_factory=dict)

    def track(self, receipt: Receipt, code: str) -> None:
        """Remember `receipt` as it is now, unless the batch already has (call before changing it)."""
        if receipt.id not in self.receipts_before:
            self.receipts_before[receipt.id] = (code, receipt.owner_account_id, receipt.status, receipt.net_grams)

    def made(self, receipt_id: int) -> None:
        self.receipts_before.setdefault(receipt_id, None)


# Built once: Core statements for the settlement path (no ORM object, no flush per entry).
_INSERT_ENTRY = insert(LedgerEntry.__table__).returning(LedgerEntry.__table__.c.id)
_INSERT_POSTING = insert(Posting.__table__)


def post_in_batch(
    session: Session,
    batch: SettlementBatch,
    kind: str,
    reference: str,
    postings: list[tuple[LedgerAccount, int]],
    *,
    memo: str = "",
    at: datetime | None = None,
) -> int:
    """`post` for a settlement batch, returning the entry's id: the entry and its postings are written at once with
    Core statements (the entry's id comes back with its insert, so nothing is flushed for it), the accounts'
    cached balances move on their held rows (written by the batch's one flush) and the batch records what moved,
    for `check_batch_invariants`. Same rows, same checks on the entry (integers, balanced per asset, not empty)."""
    lines = _balanced_lines(kind, reference, postings)
    connection = session.connection()
    entry_id = connection.execute(_INSERT_ENTRY, {"kind": kind, "reference": reference, "memo": memo,
                                                  "at": at or utcnow()}).scalar_one()
    connection.execute(_INSERT_POSTING, [{"entry_id": entry_id, "account_id": account.id, "amount": amount}
                                         for account, amount in lines])
    batch.entries.append(entry_id)
    for account, amount in lines:
        if account.id not in batch.balances_before:
            batch.balances_before[account.id] = int(account.balance)
        account.balance += amount
        batch.posted[account.id] += amount
    return entry_id


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


_BATCH_POSTED = (select(Posting.account_id, func.sum(Posting.amount))
                 .where(Posting.entry_id.in_(bindparam("entries", expanding=True))).group_by(Posting.account_id))
_RECEIPTS_NOW = (select(Receipt.id, Product.code, Receipt.owner_account_id, Receipt.status, Receipt.net_grams)
                 .join(Product, Product.id == Receipt.product_id)
                 .where(Receipt.id.in_(bindparam("ids", expanding=True))))


def check_batch_invariants(session: Session, batch: SettlementBatch) -> None:
    """The invariants after a settlement batch, in time bounded by what the batch changed (the whole-book check,
    `check_invariants`, costs time in proportion to every posting and receipt ever made, and runs at end of day).

    Checked in full: every asset's balances (all accounts, the custodian's and the centre's included) sum to zero
    (a sum over the ledger accounts, not over their history).

    Checked on the batch's changes: each account it posted to moved by exactly what the batch's postings say, both
    as the batch posted them and as they were written (so a cached balance still equals the sum of its postings);
    per (owner, product), the metal balance moved by the grams the owner's live receipts gained or lost; per
    product, the grams on live receipts moved by what warehouse_in / load_out / invalidated moved (nothing, for a
    settlement). The receipts compared are every receipt the batch read before changing it, and those it made, as
    they are now in the database against as they were before the batch.

    Why that is the same check: each invariant is a linear equation over balances and live receipt grams. It held
    before the batch (checked after the previous batch and at end of day over the whole book, on the same
    committed state); an account or receipt the batch did not change contributes the same to both sides as
    before. So it holds after the batch iff the batch's changes to both sides are equal, which is what is compared
    here. A change made outside a checked path (a corrupted row) is still found at end of day by `check_invariants`,
    and by this check as soon as a batch changes the row."""
    session.flush()
    problems: list[str] = []
    connection = session.connection()
    for asset, total in connection.execute(_ASSET_TOTALS):
        if int(total or 0) != 0:
            problems.append(f"asset {asset}: balances sum to {int(total)}, not 0")
    ids = sorted(batch.balances_before)
    touched = connection.execute(_TOUCHED, {"ids": ids}).all() if ids else []
    written = dict(connection.execute(_BATCH_POSTED, {"entries": batch.entries}).all()) if batch.entries else {}
    metal_moved: dict[tuple[int, str], int] = defaultdict(int)
    flow_moved: dict[str, int] = defaultdict(int)  # grams registered in - grams delivered out, change in the batch
    for account_id, kind, asset, holder_id, cached in touched:
        moved = int(cached) - batch.balances_before[account_id]
        posted, stored = batch.posted.get(account_id, 0), int(written.get(account_id) or 0)
        if moved != posted or moved != stored:
            problems.append(f"ledger account {account_id}: cached balance moved by {moved} in this batch, its "
                            f"postings by {stored} (posted {posted})")
        if kind == METAL:
            metal_moved[(holder_id, asset)] += moved
        elif kind == WAREHOUSE_IN:
            flow_moved[asset] -= moved
        elif kind in _OUT_KINDS:
            flow_moved[asset] -= moved
    live_by_owner: dict[tuple[int, str], int] = defaultdict(int)
    live_by_product: dict[str, int] = defaultdict(int)
    for before in batch.receipts_before.values():
        if before is not None and before[2] in LIVE_RECEIPT_STATES:
            code, owner_id, _status, grams = before
            live_by_owner[(owner_id, code)] -= int(grams)
            live_by_product[code] -= int(grams)
    receipt_ids = sorted(batch.receipts_before)
    for _id, code, owner_id, status, grams in (
            connection.execute(_RECEIPTS_NOW, {"ids": receipt_ids}) if receipt_ids else ()):
        if status in LIVE_RECEIPT_STATES:
            live_by_owner[(owner_id, code)] += int(grams)
            live_by_product[code] += int(grams)
    for key in sorted(set(metal_moved) | set(live_by_owner)):
        if metal_moved.get(key, 0) != live_by_owner.get(key, 0):
            problems.append(f"account {key[0]} product {key[1]}: ledger moved {metal_moved.get(key, 0)} g in this "
                            f"batch, its live receipts {live_by_owner.get(key, 0)} g")
    for code in sorted(set(flow_moved) | set(live_by_product)):
        if flow_moved.get(code, 0) != live_by_product.get(code, 0):
            problems.append(f"product {code}: live receipts moved {live_by_product.get(code, 0)} g in this batch, "
                            f"grams registered in − delivered out {flow_moved.get(code, 0)} g")
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
