"""A small deterministic market for the engine tests: one indium product, four members, cash and receipts."""
from __future__ import annotations

import random

from ingot.market.engine import commands as c

PRODUCT = "IN99995"
MEMBERS = ("M1", "M2", "M3", "M4")
SETTLEMENT = 200_000  # fen per kg
TICK = 100
UNITS_PER_LOT = 10  # kg per lot
T0 = 1_790_000_000_000_000  # a fixed UTC instant in microseconds; the core never reads a clock


def product_definition(key: str = "def-product", **overrides) -> c.DefineProduct:
    values = dict(
        key=key, at_us=T0, product_id=PRODUCT, tick_fen=TICK, units_per_lot=UNITS_PER_LOT, max_order_lots=50,
        band_ppm=100_000, buyer_fee=c.FeeSchedule(per_lot_fen=300, rate_ppm=150),
        seller_fee=c.FeeSchedule(per_lot_fen=200, rate_ppm=100),
    )
    values.update(overrides)
    return c.DefineProduct(**values)


def setup_commands(*, cash_fen: int = 20_000_000_000, receipts_per_member: int = 6, lots_per_receipt: int = 40,
                   phase: str = c.CONTINUOUS) -> list:
    commands: list = [product_definition(),
                      c.SetSettlementPrice("ref-0", T0, PRODUCT, SETTLEMENT)]
    for member in MEMBERS:
        commands.append(c.AdmitMember(f"admit-{member}", T0, member))
        commands.append(c.DepositCash(f"cash-{member}", T0, member, cash_fen))
        for number in range(receipts_per_member):
            rid = receipt_id(member, number)
            # Real weights are not exact multiples of the lot: each receipt carries a few extra grams.
            commands.append(c.RegisterReceipt(f"reg-{rid}", T0, rid, PRODUCT, member,
                                              lots_per_receipt * 10_000 + 37 * (number + 1), lots_per_receipt))
    if phase == c.CONTINUOUS:
        commands.append(c.SessionControl("session-continuous", T0, PRODUCT, c.CONTINUOUS))
    elif phase == c.OPEN_AUCTION:
        commands.append(c.SessionControl("session-auction", T0, PRODUCT, c.OPEN_AUCTION))
    return commands


def receipt_id(member: str, number: int) -> str:
    return f"WR-{member}-{number:03d}"


def free_receipts(core, member: str) -> list[str]:
    return sorted(rid for rid, receipt in core.receipts.items()
                  if receipt.owner_id == member and receipt.status == "live" and not receipt.encumbered_by)


def random_stream(seed: int, count: int, *, start_us: int = T0 + 1, setup: list | None = None) -> list:
    """Limit, market, IOC/FOK, cancel and amend commands from a seeded generator.

    Sells list receipts the seller holds free at that moment: the generator runs its own core alongside so it can
    see splits and transfers. Refusals still occur (cash short, someone else's order) and are part of the mix.
    """
    from ingot.market.engine.core import MatchingCore

    shadow = MatchingCore()
    for command in setup if setup is not None else setup_commands():
        shadow.apply(command)
    rng = random.Random(seed)
    commands = []
    for index in range(count):
        member = rng.choice(MEMBERS)
        at = start_us + index
        roll = rng.random()
        key = f"k{seed}-{index}"
        own = sorted(oid for oid, order in shadow.orders.items() if order.member_id == member)
        if roll < 0.12:
            target = rng.choice(own) if own and rng.random() < 0.9 else rng.randint(1, shadow.sequence + 5)
            command = c.CancelOrder(key, at, member, target)
        elif roll < 0.20:
            target = rng.choice(own) if own and rng.random() < 0.9 else rng.randint(1, shadow.sequence + 5)
            price = SETTLEMENT + TICK * rng.randint(-20, 20)
            command = c.AmendOrder(key, at, member, target, rng.randint(1, 10), price)
        else:
            side = c.BUY if rng.random() < 0.5 else c.SELL
            lots = rng.randint(1, 12)
            price = SETTLEMENT + TICK * rng.randint(-25, 25)
            order_type, tif = c.LIMIT, rng.choice((c.DAY, c.DAY, c.GTC, c.IOC, c.FOK))
            if rng.random() < 0.1:
                order_type, tif = c.MARKET, rng.choice((c.IOC, c.FOK))
                price = SETTLEMENT + TICK * (30 if side == c.BUY else -30)
            receipts: tuple[str, ...] = ()
            if side == c.SELL:
                free = free_receipts(shadow, member)
                if free:
                    receipts = tuple(rng.sample(free, min(len(free), rng.randint(1, 2))))
                    if rng.random() < 0.9:
                        lots = min(lots, sum(shadow.receipts[rid].lots for rid in receipts))
                else:
                    side = c.BUY
            command = c.NewOrder(key, at, member, PRODUCT, side, lots, price, order_type, tif, receipts)
        shadow.apply(command)
        commands.append(command)
    return commands
