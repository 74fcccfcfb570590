"""What every market service shares: roles, the caller's market scope, the trading day, engine refusals as errors."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingot.core.auth import ADMIN, AUDITOR, REGULATOR, Principal, division_prefix
from ingot.core.errors import DomainError, Forbidden, InvalidInput
from ingot.core.timeutil import SHANGHAI
from ingot.market.engine import Rejection
from ingot.market.models import MarketUser, Member, TradingAccount

MARKET_OPERATOR = "market_operator"
MEMBER = "member"
WAREHOUSE = "warehouse"
RESERVE_AGENCY = "reserve_agency"
OPERATORS = (ADMIN, MARKET_OPERATOR)
OVERSEERS = (ADMIN, MARKET_OPERATOR, REGULATOR, AUDITOR)
TRADERS = (MEMBER, RESERVE_AGENCY)


class MarketRejected(DomainError):
    """The matching core refused a command; its reason code and messages pass through unchanged."""

    status_code = 422
    code = "market_rejected"

    def __init__(self, rejection: Rejection):
        super().__init__(rejection.message_zh, rejection.message_en, field=rejection.field, code=rejection.code)
        self.rejection = rejection


def refuse(code: str, message_zh: str, message_en: str, field: str | None = None) -> InvalidInput:
    return InvalidInput(message_zh, message_en, field=field, code=code)


def trading_day(moment: datetime) -> date:
    """The trading day is the calendar day in Asia/Shanghai."""
    return moment.astimezone(SHANGHAI).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a Shanghai calendar day as aware datetimes."""
    start = datetime.combine(day, time(0, 0), tzinfo=SHANGHAI)
    return start, start + timedelta(days=1)


@dataclass(frozen=True)
class MarketScope:
    """Which trading accounts (and warehouse) the caller acts for; `everything` for operators and overseers."""

    everything: bool
    member_id: int | None
    client_id: int | None
    warehouse_id: int | None
    account_ids: frozenset[int]
    division_prefix: str | None = None

    def sees_account(self, account_id: int) -> bool:
        return self.everything or account_id in self.account_ids


def scope_of(session: Session, principal: Principal) -> MarketScope:
    if principal.role in (ADMIN, MARKET_OPERATOR, AUDITOR):
        return MarketScope(True, None, None, None, frozenset())
    if principal.role == REGULATOR:
        # The regulator of a province or prefecture sees the members registered there; the whole-market figures
        # (prices, tape, depth) are public anyway.
        prefix = division_prefix(principal.division_code or "")
        members = session.scalars(select(Member.id).where(Member.division_code.startswith(prefix))).all()
        accounts = session.scalars(select(TradingAccount.id).where(TradingAccount.member_id.in_(members))).all()
        return MarketScope(False, None, None, None, frozenset(accounts), prefix)
    link = session.get(MarketUser, principal.user_id)
    if link is None:
        return MarketScope(False, None, None, None, frozenset())
    if link.warehouse_id is not None:
        return MarketScope(False, None, None, link.warehouse_id, frozenset())
    query = select(TradingAccount.id).where(TradingAccount.member_id == link.member_id)
    if link.client_id is not None:
        # A client sees its own segregated account only.
        query = query.where(TradingAccount.client_id == link.client_id)
    return MarketScope(False, link.member_id, link.client_id, None, frozenset(session.scalars(query).all()))


def in_scope(session: Session, principal: Principal, account: TradingAccount) -> bool:
    """Whether `scope_of(principal).sees_account(account.id)`, decided for this one account without listing every
    account of the caller's scope (the order path asks it on every request)."""
    if principal.role in (ADMIN, MARKET_OPERATOR, AUDITOR):
        return True
    if principal.role == REGULATOR:
        division = session.scalar(select(Member.division_code).where(Member.id == account.member_id))
        return division is not None and division.startswith(division_prefix(principal.division_code or ""))
    link = session.get(MarketUser, principal.user_id)
    if link is None:
        return False
    return link_sees_account(link.member_id, link.client_id, link.warehouse_id, account)


def link_sees_account(member_id: int | None, client_id: int | None, warehouse_id: int | None,
                      account: TradingAccount) -> bool:
    """A linked market user's rule: a member's staff see the member's accounts, a client only its own; a warehouse's
    staff see none."""
    if member_id is None or warehouse_id is not None or member_id != account.member_id:
        return False
    return client_id is None or client_id == account.client_id


def require(principal: Principal, roles: tuple[str, ...], what_zh: str, what_en: str) -> None:
    if principal.role not in roles:
        raise Forbidden(f"当前角色无权{what_zh}", f"role '{principal.role}' may not {what_en}")


def positive_int(value, field: str, what_zh: str, what_en: str, maximum: int | None = None) -> int:
    if type(value) is not int or value <= 0:
        raise refuse("not_positive", f"{what_zh}须为正整数，收到 {value!r}", f"{what_en} must be a positive integer, got {value!r}",
                     field)
    if maximum is not None:
        bounded_int(value, field, what_zh, what_en, minimum=1, maximum=maximum)
    return value


# Bounds on every number that enters the market, so that nothing a caller sends can overflow a database column
# (64-bit BIGINT for money, grams, prices and ids; 32-bit INTEGER for lots and per-lot figures) or the sums the
# ledger and the statements make of them. Each is far above any real figure of the centre's metals.
ID_MAX = 2**63 - 1
MAX_LOTS = 1_000_000
MAX_PRICE_FEN = 10**12  # fen per price unit: ten billion yuan per tonne or per kilogram
MAX_TICK_FEN = 10**9
MAX_UNITS_PER_LOT = 10_000
MAX_FEE_PER_LOT_FEN = 10**9
MAX_PPM = 999_999
MAX_AMOUNT_FEN = 10**14  # one custodian statement line: a trillion yuan
MAX_BALANCE_FEN = 10**15  # one custodian closing balance
MAX_RECEIPT_GRAMS = 10**10  # ten thousand tonnes on one receipt
MAX_STOCK_GRAMS = 10**13  # ten million tonnes in one warehouse


def bounded_int(value, field: str, what_zh: str, what_en: str, *, minimum: int, maximum: int) -> int:
    """A whole number within [minimum, maximum], else a refusal naming the field and the bounds."""
    if type(value) is not int:
        raise refuse("not_integer", f"{what_zh}须为整数，收到 {value!r}", f"{what_en} must be a whole number, got {value!r}", field)
    if not minimum <= value <= maximum:
        raise refuse("out_of_range", f"{what_zh}须在 {minimum:,} 至 {maximum:,} 之间，收到 {value:,}",
                     f"{what_en} must be between {minimum:,} and {maximum:,}, got {value:,}", field)
    return value
