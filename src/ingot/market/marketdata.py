"""Public market data: the trade tape, order-book depth, OHLCV bars, settlement prices, and a line chart in SVG.

Only prices and quantities are public; who traded stays with the parties, the centre and the regulator.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingot.core.timeutil import SHANGHAI
from ingot.market import gateway
from ingot.market.common import ID_MAX, bounded_int, refuse
from ingot.market.models import Product, SettlementPrice, Trade
from ingot.market.products import get_product, previous_settlement_price, version_in_force

BAR_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86_400}


def tape(session: Session, product: str | None = None, *, after_id: int = 0, limit: int = 100) -> list[dict]:
    bounded_int(after_id, "after", "起始成交编号", "the trade id to start after", minimum=0, maximum=ID_MAX)
    query = select(Trade, Product.code).join(Product, Product.id == Trade.product_id).where(Trade.id > after_id)
    if product:
        query = query.where(Trade.product_id == get_product(session, product).id)
    rows = session.execute(query.order_by(Trade.id.desc()).limit(limit)).all()
    return [{"trade_id": t.id, "product": code, "price_fen": t.price_fen, "lots": t.lots, "aggressor": t.aggressor,
             "at": t.at.isoformat()} for t, code in rows]


def depth(session: Session, product: str, levels: int = 10) -> dict:
    get_product(session, product)
    book = gateway.read_core(session, lambda core: (core.depth(product), core.products[product].phase))
    sides, phase = book
    return {
        "product": product, "phase": phase,
        "bids": [{"price_fen": p, "lots": q, "orders": n} for p, q, n in sides["bids"][:levels]],
        "asks": [{"price_fen": p, "lots": q, "orders": n} for p, q, n in sides["asks"][:levels]],
    }


def bars(session: Session, product: str, *, interval: str = "5m", day: date | None = None) -> list[dict]:
    """OHLCV bars of one Shanghai day; buckets are aligned to Shanghai clock time."""
    if interval not in BAR_SECONDS:
        raise refuse("invalid_interval", f"K 线周期须为 {', '.join(BAR_SECONDS)} 之一", f"the bar interval is one of {', '.join(BAR_SECONDS)}",
                     "interval")
    row = get_product(session, product)
    query = select(Trade).where(Trade.product_id == row.id).order_by(Trade.id)
    if day is not None:
        query = query.where(Trade.trade_day == day)
    seconds = BAR_SECONDS[interval]
    result: list[dict] = []
    for trade in session.scalars(query):
        local = trade.at.astimezone(SHANGHAI)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        offset = int((local - midnight).total_seconds()) // seconds * seconds
        start = (midnight + timedelta(seconds=offset)).astimezone(timezone.utc)
        if result and result[-1]["start"] == start:
            bar = result[-1]
            bar["high_fen"] = max(bar["high_fen"], trade.price_fen)
            bar["low_fen"] = min(bar["low_fen"], trade.price_fen)
            bar["close_fen"] = trade.price_fen
            bar["volume_lots"] += trade.lots
            bar["turnover_fen"] += trade.notional_fen
        else:
            result.append({"start": start, "open_fen": trade.price_fen, "high_fen": trade.price_fen,
                           "low_fen": trade.price_fen, "close_fen": trade.price_fen, "volume_lots": trade.lots,
                           "turnover_fen": trade.notional_fen})
    for bar in result:
        bar["start"] = bar["start"].isoformat()
    return result


def settlement_prices(session: Session, product: str | None = None, limit: int = 60) -> list[dict]:
    query = select(SettlementPrice, Product.code).join(Product, Product.id == SettlementPrice.product_id)
    if product:
        query = query.where(SettlementPrice.product_id == get_product(session, product).id)
    rows = session.execute(query.order_by(SettlementPrice.day.desc(), Product.code).limit(limit)).all()
    return [{"product": code, "day": s.day.isoformat(), "price_fen": s.price_fen, "method": s.method,
             "volume_lots": s.volume_lots} for s, code in rows]


def watch(session: Session, day: date) -> list[dict]:
    """One row per product: rules in force, previous settlement, last, change, best bid/ask, day volume."""
    phases_and_books = gateway.read_core(session, lambda core: {
        pid: (p.phase, core.best_bid(pid), core.best_ask(pid)) for pid, p in core.products.items()})
    rows = []
    for product in session.scalars(select(Product).order_by(Product.code)):
        version = version_in_force(session, product, day)
        previous = previous_settlement_price(session, product, day)
        trades = session.execute(select(Trade.price_fen, Trade.lots).where(
            Trade.product_id == product.id, Trade.trade_day == day).order_by(Trade.id)).all()
        last = trades[-1][0] if trades else None
        phase, bid, ask = phases_and_books.get(product.code, ("closed", 0, 0))
        rows.append({
            "product": product, "version": version, "previous_fen": previous, "last_fen": last,
            "change_fen": (last - previous) if last is not None else None, "bid_fen": bid or None,
            "ask_fen": ask or None, "volume_lots": sum(q for _, q in trades), "phase": phase,
        })
    return rows


def line_chart(points: list[tuple[str, int]], *, width: int = 640, height: int = 180, unit: str = "") -> Markup:
    """A price line as inline SVG (no script, no external library); `points` are (label, value) in order."""
    if not points:
        return Markup("")
    values = [value for _, value in points]
    low, high = min(values), max(values)
    span = (high - low) or 1
    left, right, top, bottom = 60, 10, 10, 24
    inner_w, inner_h = width - left - right, height - top - bottom
    step = inner_w / max(1, len(points) - 1)

    def y(value: int) -> float:
        return top + inner_h - (value - low) * inner_h / span

    path = " ".join(f"{'M' if i == 0 else 'L'}{left + i * step:.1f},{y(v):.1f}" for i, v in enumerate(values))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" class="line-chart">',
             f'<text x="4" y="{top + 10}" font-size="11">{escape(_yuan(high))}{escape(unit)}</text>',
             f'<text x="4" y="{top + inner_h}" font-size="11">{escape(_yuan(low))}{escape(unit)}</text>',
             f'<path d="{path}" fill="none" stroke="#b45309" stroke-width="2"/>']
    for index in sorted({0, len(points) - 1}):
        parts.append(f'<text x="{left + index * step:.1f}" y="{height - 6}" font-size="11" '
                     f'text-anchor="{"start" if index == 0 else "end"}">{escape(points[index][0])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100:,}.{fen % 100:02d}"


def yuan(fen: int | None) -> str:
    """Fen shown as yuan with two decimals, exactly (no float)."""
    return "" if fen is None else _yuan(int(fen))


def local_time(value: str | datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A time as the API gives it (ISO 8601 in UTC with its offset) or an aware datetime, shown in Asia/Shanghai."""
    if value is None or value == "":
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(SHANGHAI).strftime(fmt)


def stream_since(session: Session, after_id: int, product: str | None = None) -> list[dict]:
    """Trades after `after_id` (of one product, if given), oldest first."""
    return list(reversed(tape(session, product, after_id=after_id, limit=500)))


def latest_trade_id(session: Session) -> int:
    return int(session.scalar(select(Trade.id).order_by(Trade.id.desc()).limit(1)) or 0)


def utc_day(moment: datetime) -> date:
    return moment.astimezone(SHANGHAI).date()


def reserve_operations(session: Session, limit: int = 50) -> list[dict]:
    """The reserve agency's trades, published in full (seed 000: a commercial reserve that intervenes in the price
    must do so in the open); the agency is an account holder like any other, never the centre itself."""
    from ingot.market.models import Member, TradingAccount

    agency_accounts = {a.id: a.engine_id for a in session.scalars(
        select(TradingAccount).join(Member, Member.id == TradingAccount.member_id).where(Member.kind == "reserve_agency"))}
    if not agency_accounts:
        return []
    ids = list(agency_accounts)
    rows = session.execute(
        select(Trade, Product.code).join(Product, Product.id == Trade.product_id)
        .where(Trade.buyer_account_id.in_(ids) | Trade.seller_account_id.in_(ids))
        .order_by(Trade.id.desc()).limit(limit)).all()
    return [{"trade_id": t.id, "product": code, "agency": agency_accounts.get(t.buyer_account_id) or agency_accounts[t.seller_account_id],
             "operation": "buy" if t.buyer_account_id in agency_accounts else "sell", "price_fen": t.price_fen,
             "lots": t.lots, "at": t.at.isoformat()} for t, code in rows]
