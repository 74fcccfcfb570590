"""Warehouses, members, clients and their trading accounts; money in and out against the custodian bank's statement.

Client money is segregated: every client has its own trading account, its own ledger cash account, its own cash in
the matching core and its own sub-account line on the custodian's statement. Deposits and withdrawals are recorded
only against a statement line of the same account and amount, each line used once; the daily reconciliation
compares every account's ledger balance with the custodian's closing balance and flags unmatched lines.
"""
from __future__ import annotations

import re
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingot.core.audit import record_change
from ingot.core.auth import Principal, User
from ingot.core.errors import Conflict, Forbidden, NotFound
from ingot.core.timeutil import utcnow
from ingot.market import gateway, ledger
from ingot.market.common import (
    ID_MAX,
    MAX_AMOUNT_FEN,
    MAX_BALANCE_FEN,
    MEMBER,
    OPERATORS,
    RESERVE_AGENCY,
    WAREHOUSE,
    MarketRejected,
    bounded_int,
    day_bounds,
    in_scope,
    refuse,
    require,
    scope_of,
)
from ingot.market.engine import AdmitMember, DepositCash, SetMemberSuspended, WithdrawCash, utc_micros
from ingot.market.models import (
    KINDS_WITH_CLIENTS,
    MEMBER_KINDS,
    BankBalance,
    BankStatementLine,
    CashMovement,
    CashReconciliation,
    Client,
    MarketAlarm,
    MarketUser,
    Member,
    TradingAccount,
    Warehouse,
)

_CODE = re.compile(r"^[A-Z0-9]{2,16}$")
_DIVISION = re.compile(r"^\d{6}$")


def _code(value: str, field: str) -> str:
    if not _CODE.match(value or ""):
        raise refuse("invalid_code", f"代码须为 2–16 位大写字母或数字：{value!r}", f"a code is 2-16 upper-case letters or digits: {value!r}",
                     field)
    return value


def _division(value: str) -> str:
    if not _DIVISION.match(value or ""):
        raise refuse("invalid_division", "行政区划代码须为 6 位数字", "a division code has 6 digits", "division_code")
    return value


# ---------------------------------------------------------------- warehouses


def create_warehouse(session: Session, actor: Principal, *, code: str, name_zh: str, name_en: str = "",
                     division_code: str, address: str = "") -> Warehouse:
    require(actor, OPERATORS, "登记交割仓库", "register warehouses")
    _code(code, "code")
    _division(division_code)
    if session.scalar(select(Warehouse.id).where(Warehouse.code == code)) is not None:
        raise Conflict(f"仓库代码已存在：{code}", f"warehouse code already exists: {code}", field="code")
    warehouse = Warehouse(code=code, name_zh=name_zh, name_en=name_en or name_zh, division_code=division_code,
                          address=address)
    session.add(warehouse)
    session.flush()
    record_change(session, actor, "market_warehouse", warehouse.id, "create", None,
                  {"code": code, "name_zh": name_zh, "division_code": division_code}, division_code=division_code)
    return warehouse


def get_warehouse(session: Session, code: str) -> Warehouse:
    warehouse = session.scalar(select(Warehouse).where(Warehouse.code == code))
    if warehouse is None:
        raise NotFound(f"仓库不存在：{code}", f"no such warehouse: {code}", field="warehouse")
    return warehouse


def list_warehouses(session: Session) -> list[Warehouse]:
    return list(session.scalars(select(Warehouse).order_by(Warehouse.code)))


# ---------------------------------------------------------------- members, clients, accounts


def member_view(member: Member) -> dict:
    return {"code": member.code, "name": member.name, "kind": member.kind, "enterprise_id": member.enterprise_id,
            "division_code": member.division_code, "suspended": member.suspended}


def _open_account(session: Session, member: Member, client: Client | None, now: datetime) -> TradingAccount:
    engine_id = member.code if client is None else f"{member.code}/{client.code}"
    account = TradingAccount(engine_id=engine_id, member_id=member.id, client_id=client.id if client else None)
    session.add(account)
    session.flush()
    outcome = gateway.execute(session, AdmitMember(f"admit:{engine_id}", utc_micros(now), engine_id))
    if not outcome.ack.accepted:
        raise MarketRejected(outcome.ack.rejection)
    ledger.cash_of(session, account.id)
    return account


def create_member(session: Session, actor: Principal, *, code: str, name: str, kind: str, division_code: str,
                  enterprise_id: int | None = None, now: datetime | None = None) -> Member:
    """Admit a member; industry members, traders and the reserve agency trade for their own account."""
    require(actor, OPERATORS, "接纳会员", "admit members")
    _code(code, "code")
    _division(division_code)
    if kind not in MEMBER_KINDS:
        raise refuse("invalid_member_kind", f"会员类型无效：{kind}", f"invalid member kind: {kind}", "kind")
    if session.scalar(select(Member.id).where(Member.code == code)) is not None:
        raise Conflict(f"会员代码已存在：{code}", f"member code already exists: {code}", field="code")
    if enterprise_id is not None:
        from ingot.registry.models import Enterprise

        bounded_int(enterprise_id, "enterprise_id", "企业编号", "the enterprise id", minimum=1, maximum=ID_MAX)
        if session.get(Enterprise, enterprise_id) is None:
            raise refuse("unknown_enterprise", f"企业不存在：{enterprise_id}", f"no such enterprise: {enterprise_id}",
                         "enterprise_id")
    member = Member(code=code, name=name, kind=kind, division_code=division_code, enterprise_id=enterprise_id)
    session.add(member)
    session.flush()
    _open_account(session, member, None, now or utcnow())
    record_change(session, actor, "market_member", member.id, "create", None, member_view(member),
                  division_code=division_code, enterprise_id=enterprise_id)
    return member


def get_member(session: Session, code: str) -> Member:
    member = session.scalar(select(Member).where(Member.code == code))
    if member is None:
        raise NotFound(f"会员不存在：{code}", f"no such member: {code}", field="member")
    return member


def list_members(session: Session) -> list[Member]:
    return list(session.scalars(select(Member).order_by(Member.code)))


def add_client(session: Session, actor: Principal, member_code: str, *, code: str, name: str,
               now: datetime | None = None) -> Client:
    """A comprehensive or brokerage member opens a segregated account for a client."""
    member = get_member(session, member_code)
    scope = scope_of(session, actor)
    if actor.role not in OPERATORS and not (actor.role == MEMBER and scope.member_id == member.id and scope.client_id is None):
        raise Forbidden("只有交易中心或该会员本身可以开立客户账户", "only the centre or the member itself may open client accounts")
    if member.kind not in KINDS_WITH_CLIENTS:
        raise refuse("member_has_no_clients", f"{MEMBER_KINDS[member.kind][0]}只能自营，不能代理客户",
                     f"a {MEMBER_KINDS[member.kind][1]} trades for its own account only and cannot have clients", "member")
    _code(code, "code")
    if session.scalar(select(Client.id).where(Client.member_id == member.id, Client.code == code)) is not None:
        raise Conflict(f"客户代码已存在：{code}", f"client code already exists: {code}", field="code")
    client = Client(member_id=member.id, code=code, name=name)
    session.add(client)
    session.flush()
    _open_account(session, member, client, now or utcnow())
    record_change(session, actor, "market_client", client.id, "create", None,
                  {"member": member.code, "code": code, "name": name}, division_code=member.division_code)
    return client


def account_of(session: Session, member: Member, client: Client | None = None) -> TradingAccount:
    query = select(TradingAccount).where(TradingAccount.member_id == member.id)
    query = query.where(TradingAccount.client_id.is_(None) if client is None else TradingAccount.client_id == client.id)
    account = session.scalar(query)
    if account is None:
        raise NotFound("交易账户不存在", "no such trading account", field="account")
    return account


def get_account(session: Session, engine_id: str) -> TradingAccount:
    account = session.scalar(select(TradingAccount).where(TradingAccount.engine_id == engine_id))
    if account is None:
        raise NotFound(f"交易账户不存在：{engine_id}", f"no such trading account: {engine_id}", field="account")
    return account


def accessible_account(session: Session, actor: Principal, engine_id: str) -> TradingAccount:
    account = get_account(session, engine_id)
    if not in_scope(session, actor, account):
        # Said as "no such account" so that nobody learns which other accounts exist.
        raise NotFound(f"交易账户不存在：{engine_id}", f"no such trading account: {engine_id}", field="account")
    return account


def link_user(session: Session, actor: Principal, user: User, *, member: Member | None = None,
              client: Client | None = None, warehouse: Warehouse | None = None) -> MarketUser:
    """Say which member (and client) or warehouse a market-role user acts for."""
    require(actor, OPERATORS, "关联市场用户", "link market users")
    if user.role in (MEMBER, RESERVE_AGENCY):
        if member is None or warehouse is not None:
            raise refuse("link_needs_member", "会员用户须关联会员", "a member user is linked to a member", "member")
        if client is not None and client.member_id != member.id:
            raise refuse("client_not_of_member", "客户不属于该会员", "the client does not belong to that member", "client")
        if (user.role == RESERVE_AGENCY) != (member.kind == "reserve_agency"):
            raise refuse("reserve_agency_link", "储备机构用户只能关联储备机构", "reserve-agency users link to the reserve agency only",
                         "member")
    elif user.role == WAREHOUSE:
        if warehouse is None or member is not None:
            raise refuse("link_needs_warehouse", "仓库用户须关联仓库", "a warehouse user is linked to a warehouse", "warehouse")
    else:
        raise refuse("not_a_market_role", f"角色 {user.role} 无需关联", f"role {user.role} needs no market link", "user")
    link = session.get(MarketUser, user.id) or MarketUser(user_id=user.id)
    link.member_id = member.id if member else None
    link.client_id = client.id if client else None
    link.warehouse_id = warehouse.id if warehouse else None
    session.add(link)
    session.flush()
    record_change(session, actor, "market_user", user.id, "link", None,
                  {"member_id": link.member_id, "client_id": link.client_id, "warehouse_id": link.warehouse_id})
    return link


def set_member_suspended(session: Session, actor: Principal, code: str, suspended: bool,
                         now: datetime | None = None) -> Member:
    """Suspending a member suspends its own account and every client account under it."""
    require(actor, OPERATORS, "暂停或恢复会员", "suspend or resume members")
    member = get_member(session, code)
    before = member_view(member)
    at = now or utcnow()
    accounts = session.scalars(select(TradingAccount).where(TradingAccount.member_id == member.id)
                               .order_by(TradingAccount.id)).all()
    for account in accounts:
        key = f"member-suspend:{account.engine_id}:{int(suspended)}:{utc_micros(at)}"
        outcome = gateway.execute(session, SetMemberSuspended(key, utc_micros(at), account.engine_id, suspended))
        if not outcome.ack.accepted:
            raise MarketRejected(outcome.ack.rejection)
    member.suspended = suspended
    session.flush()
    record_change(session, actor, "market_member", member.id, "suspend" if suspended else "resume", before,
                  member_view(member), division_code=member.division_code)
    return member


# ---------------------------------------------------------------- money against the custodian's statement


def import_bank_line(session: Session, actor: Principal, *, bank_ref: str, account_engine_id: str, value_date: date,
                     amount_fen: int) -> BankStatementLine:
    """One line of the custodian bank's statement (credit positive, debit negative)."""
    require(actor, OPERATORS, "导入托管银行对账单", "import custodian statements")
    if not (bank_ref or "").strip():
        raise refuse("missing_bank_ref", "缺少银行流水号", "the bank reference is missing", "bank_ref")
    if type(amount_fen) is not int or amount_fen == 0:
        raise refuse("invalid_amount", "金额须为非零整数（分）", "the amount is a non-zero whole number of fen", "amount_fen")
    bounded_int(amount_fen, "amount_fen", "银行流水金额（分）", "the statement amount (fen)", minimum=-MAX_AMOUNT_FEN,
                maximum=MAX_AMOUNT_FEN)
    account = get_account(session, account_engine_id)
    if session.scalar(select(BankStatementLine.id).where(BankStatementLine.bank_ref == bank_ref)) is not None:
        raise Conflict(f"银行流水号重复：{bank_ref}", f"bank reference already imported: {bank_ref}", field="bank_ref")
    line = BankStatementLine(bank_ref=bank_ref, account_id=account.id, value_date=value_date, amount_fen=amount_fen)
    session.add(line)
    session.flush()
    record_change(session, actor, "market_bank_line", line.id, "import", None,
                  {"bank_ref": bank_ref, "account": account.engine_id, "amount_fen": amount_fen,
                   "value_date": value_date})
    return line


def _movement(session: Session, actor: Principal, kind: str, bank_ref: str, now: datetime | None) -> CashMovement:
    require(actor, OPERATORS, "记录出入金", "record deposits and withdrawals")
    line = session.scalar(select(BankStatementLine).where(BankStatementLine.bank_ref == bank_ref))
    if line is None:
        raise refuse("unknown_bank_line", f"托管银行对账单中没有流水：{bank_ref}", f"no custodian statement line {bank_ref}",
                     "bank_ref")
    if line.matched_movement_id is not None:
        raise Conflict(f"银行流水 {bank_ref} 已入账", f"bank line {bank_ref} is already booked", field="bank_ref")
    if (kind == "deposit") != (line.amount_fen > 0):
        raise refuse("direction_mismatch", "入金须对应贷记流水，出金须对应借记流水",
                     "a deposit matches a credit line and a withdrawal a debit line", "bank_ref")
    account = session.get(TradingAccount, line.account_id)
    amount = abs(line.amount_fen)
    at = now or utcnow()
    command_type = DepositCash if kind == "deposit" else WithdrawCash
    outcome = gateway.execute(session, command_type(f"{kind}:{bank_ref}", utc_micros(at), account.engine_id, amount))
    if not outcome.ack.accepted:
        raise MarketRejected(outcome.ack.rejection)
    bank = ledger.ledger_account(session, ledger.BANK, ledger.CNY)
    cash = ledger.cash_of(session, account.id)
    sign = 1 if kind == "deposit" else -1
    entry = ledger.post(session, kind, bank_ref, [(bank, -sign * amount), (cash, sign * amount)], at=at,
                        memo=f"{account.engine_id}")
    movement = CashMovement(account_id=account.id, kind=kind, amount_fen=amount, bank_line_id=line.id,
                            entry_id=entry.id, at=at)
    session.add(movement)
    session.flush()
    line.matched_movement_id = movement.id
    ledger.check_invariants(session)
    member = session.get(Member, account.member_id)
    record_change(session, actor, "market_cash_movement", movement.id, kind, None,
                  {"account": account.engine_id, "amount_fen": amount, "bank_ref": bank_ref},
                  division_code=member.division_code)
    return movement


def deposit(session: Session, actor: Principal, bank_ref: str, now: datetime | None = None) -> CashMovement:
    return _movement(session, actor, "deposit", bank_ref, now)


def withdraw(session: Session, actor: Principal, bank_ref: str, now: datetime | None = None) -> CashMovement:
    return _movement(session, actor, "withdrawal", bank_ref, now)


def import_bank_balance(session: Session, actor: Principal, *, account_engine_id: str, day: date,
                        closing_fen: int) -> BankBalance:
    require(actor, OPERATORS, "导入托管银行余额", "import custodian balances")
    if type(closing_fen) is not int:
        raise refuse("invalid_amount", "余额须为整数（分）", "the balance is a whole number of fen", "closing_fen")
    bounded_int(closing_fen, "closing_fen", "托管银行余额（分）", "the custodian balance (fen)", minimum=-MAX_BALANCE_FEN,
                maximum=MAX_BALANCE_FEN)
    account = get_account(session, account_engine_id)
    row = session.scalar(select(BankBalance).where(BankBalance.account_id == account.id, BankBalance.day == day))
    if row is not None:
        raise Conflict(f"{day} 的余额已导入", f"the balance for {day} is already imported", field="day")
    row = BankBalance(account_id=account.id, day=day, closing_fen=closing_fen)
    session.add(row)
    session.flush()
    record_change(session, actor, "market_bank_balance", row.id, "import", None,
                  {"account": account.engine_id, "day": day, "closing_fen": closing_fen})
    return row


def reconcile_cash(session: Session, actor: Principal, day: date) -> list[CashReconciliation]:
    """Per account: the ledger's closing balance of `day` against the custodian's, and unmatched statement lines.
    A break raises an alarm row the regulator sees."""
    require(actor, OPERATORS, "执行资金对账", "run the cash reconciliation")
    _, end = day_bounds(day)
    rows = []
    for account in session.scalars(select(TradingAccount).order_by(TradingAccount.id)):
        cash = ledger.cash_of(session, account.id)
        ledger_fen = ledger.balance_at(session, cash, end)
        bank = session.scalar(select(BankBalance.closing_fen).where(BankBalance.account_id == account.id,
                                                                     BankBalance.day == day))
        unmatched = session.scalar(select(func.count(BankStatementLine.id)).where(
            BankStatementLine.account_id == account.id, BankStatementLine.value_date <= day,
            BankStatementLine.matched_movement_id.is_(None))) or 0
        if bank is None:
            status = "missing"
        elif int(bank) == ledger_fen and unmatched == 0:
            status = "ok"
        else:
            status = "break"
        row = session.scalar(select(CashReconciliation).where(CashReconciliation.account_id == account.id,
                                                               CashReconciliation.day == day))
        if row is None:
            row = CashReconciliation(account_id=account.id, day=day)
            session.add(row)
        row.ledger_fen, row.bank_fen, row.unmatched_lines, row.status, row.at = (
            ledger_fen, None if bank is None else int(bank), int(unmatched), status, utcnow())
        if status == "break":
            member = session.get(Member, account.member_id)
            session.add(MarketAlarm(
                kind="cash_break", reference=f"{account.engine_id}@{day.isoformat()}",
                message_zh=f"资金对账不符：账户 {account.engine_id}，台账 {ledger_fen} 分，银行 {bank} 分，未匹配流水 {unmatched} 笔",
                message_en=f"cash break: account {account.engine_id}, ledger {ledger_fen} fen, bank {bank} fen, "
                           f"{unmatched} unmatched line(s)",
                division_code=member.division_code))
        rows.append(row)
    session.flush()
    record_change(session, actor, "market_cash_reconciliation", day.isoformat(), "run", None,
                  {"accounts": len(rows), "breaks": sum(1 for r in rows if r.status == "break")})
    return rows


def cash_position(session: Session, account: TradingAccount) -> dict:
    """Ledger balance, and the part the matching core holds locked for open buy orders."""
    balance = ledger.balance(session, ledger.CASH, ledger.CNY, account.id)

    def read(core):
        member = core.members.get(account.engine_id)
        return (member.available_fen, member.locked_fen) if member else (0, 0)

    available, locked = gateway.read_core(session, read)
    return {"account": account.engine_id, "balance_fen": balance, "available_fen": available, "locked_fen": locked,
            "consistent": available + locked == balance}
