"""The trading centre's deterministic matching core, its journal and its replay.

``MatchingCore`` is pure (no I/O, no clock); ``JournaledEngine`` puts it behind a group-committed journal.
"""
from ingot.market.engine.commands import (
    BREAK,
    BUY,
    CLOSE,
    CONTINUOUS,
    DAY,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    OPEN_AUCTION,
    SELL,
    UNCROSS,
    AdmitMember,
    AmendOrder,
    CancelOrder,
    DefineProduct,
    DepositCash,
    DeregisterReceipt,
    FeeSchedule,
    NewOrder,
    RegisterReceipt,
    SessionControl,
    SetMemberSuspended,
    SetProductSuspended,
    SetSettlementPrice,
    WithdrawCash,
    from_utc_micros,
    utc_micros,
)
from ingot.market.engine.core import Ack, InvariantBroken, MatchingCore, Outcome
from ingot.market.engine.journal import JournalCorrupt, JournaledEngine, JournalInUse, recover, write_snapshot
from ingot.market.engine.reasons import MESSAGES, Rejection

__all__ = [
    "BUY", "SELL", "LIMIT", "MARKET", "IOC", "FOK", "DAY", "GTC", "OPEN_AUCTION", "UNCROSS", "CONTINUOUS", "BREAK",
    "CLOSE",
    "AdmitMember", "AmendOrder", "CancelOrder", "DefineProduct", "DepositCash", "DeregisterReceipt", "FeeSchedule",
    "NewOrder", "RegisterReceipt", "SessionControl", "SetMemberSuspended", "SetProductSuspended",
    "SetSettlementPrice", "WithdrawCash", "utc_micros", "from_utc_micros",
    "Ack", "Outcome", "MatchingCore", "InvariantBroken", "JournaledEngine", "JournalCorrupt", "JournalInUse", "recover",
    "write_snapshot", "MESSAGES", "Rejection",
]
