"""The native core: new orders and cancels on C state, in batches, with answers built only when asked for.

``NativeCore`` keeps the state ``ReferenceCore`` keeps, but the part that new orders and cancels touch -- books,
cash, receipts, live orders, the idempotency memory -- lives in C (``_nativecore.c``: price levels in sorted
arrays, orders in a slab with intrusive FIFO lists, open-addressing hashes, ``__int128`` fen). Everything else
(amendments, operator commands, sessions and the opening auction, views, invariants, snapshots) is the reference's
own code: the state moves between the two through the canonical picture (``ReferenceCore.to_state``), so the state
hash is the reference's by construction and a snapshot plus journal replays exactly. The move costs time in
proportion to the state, so it is made only when the next command needs the other side (a run of orders and
cancels stays native; a run of operator commands stays in Python).

Two entry points:

* ``run(pack(commands))`` -- the batch path: ``pack`` turns NewOrder/CancelOrder objects into 64-byte records plus
  a string blob (the format is in ``_nativecore.c``); ``run`` hands them to C in one call and returns a ``Batch``
  of 64-byte result and event records. ``Batch.outcome(i)`` / ``Batch.outcomes()`` build the very ``Outcome``,
  ``Ack`` and event objects the reference would have returned, lazily.
* ``apply(command)`` -- the object API, the reference's signature: a batch of one, decoded at once.

A command ``pack`` cannot represent (a field of the wrong Python type, an unknown side, order type or time in
force, an integer outside 64 bits) is refused by ``pack`` with ``Unpackable``; ``apply`` sends it to the
reference, which refuses it with its own words. State that does not fit the native bounds (see ``_nativecore.c``)
stays in Python, and then ``run`` applies each command through the reference; so does everything without the
extension, or with ``INGOT_PURE_PYTHON=1``.

A malformed batch (records not made by ``pack``) is refused whole before anything runs. An allocation failure in
the middle of a batch leaves the native state half-changed: ``run`` raises ``MemoryError`` and the core is not to
be used again (the journal still recovers everything acknowledged before).
"""
from __future__ import annotations

import os
import struct
from typing import Iterable

from ingot.market.engine import commands as c
from ingot.market.engine.core import (
    Ack,
    Outcome,
    Product,
    ReferenceCore,
)
from ingot.market.engine.events import (
    OrderAccepted,
    OrderCancelled,
    ReceiptDelivery,
    ReceiptSplit,
    SettlementInstruction,
    TradeExecuted,
)
from ingot.market.engine.reasons import Refused

_nativecore = None
if os.environ.get("INGOT_PURE_PYTHON") != "1":  # as for MatchingCore: the switch leaves only the reference
    try:  # built by `pip install -e .` (setup.py)
        from ingot.market.engine import _nativecore
    except ImportError:  # pragma: no cover - an unbuilt checkout: NativeCore runs everything on the reference
        pass

AVAILABLE = _nativecore is not None
if AVAILABLE:
    _nativecore.configure_pack(c.NewOrder, c.CancelOrder)
    _nativecore.configure_decode({
        "Outcome": Outcome, "Ack": Ack, "OrderAccepted": OrderAccepted, "OrderCancelled": OrderCancelled,
        "TradeExecuted": TradeExecuted, "SettlementInstruction": SettlementInstruction,
        "ReceiptDelivery": ReceiptDelivery, "ReceiptSplit": ReceiptSplit,
    })

RECORD = 64
_record = struct.Struct("<8q")
_ref = struct.Struct("<q")
_unpack_records = struct.Struct("<8q").iter_unpack

K_NEW, K_CANCEL = 1, 2
_SIDES = {c.BUY: 1, c.SELL: 2}
_TYPES = {c.LIMIT: 1, c.MARKET: 2}
_TIFS = {c.DAY: 1, c.GTC: 2, c.IOC: 3, c.FOK: 4}
SIDE_NAMES = ("", c.BUY, c.SELL)
TYPE_NAMES = ("", c.LIMIT, c.MARKET)
TIF_NAMES = ("", c.DAY, c.GTC, c.IOC, c.FOK)
PHASE_NAMES = ("closed", "call_auction", "auction_done", "continuous", "break")
STATUS_NAMES = ("", "done", "resting", "filled", "cancelled", "killed", "amended", "rejected")
ST_REJECTED = 7
CANCEL_REASONS = ("", "client", "self_trade", "ioc_remainder", "market_remainder", "fok_unfilled")
REASONS = (
    "", "invalid_key", "invalid_time", "unknown_member", "unknown_product", "member_suspended", "product_suspended",
    "market_order_tif", "tif_not_allowed_in_auction", "market_closed", "non_positive_quantity",
    "quantity_above_maximum", "non_positive_price", "off_tick_price", "no_reference_price", "price_outside_band",
    "no_receipts_for_buy", "insufficient_cash", "insufficient_receipts", "unknown_receipt", "receipt_not_owned",
    "receipt_wrong_product", "receipt_encumbered", "receipt_listed_twice", "unknown_order", "not_your_order",
)
EV_ACCEPTED, EV_CANCELLED, EV_TRADE, EV_SETTLE, EV_DELIVERY, EV_SPLIT = 1, 2, 3, 4, 5, 6
FLAG_RECEIPTS_NOT_LIST = 1 << 32
_MASK64 = (1 << 64) - 1
_I64 = (-(1 << 63), (1 << 63) - 1)
_STR_LIMIT = 1 << 24


def _i128(lo: int, hi: int) -> int:
    return (hi << 64) | (lo & _MASK64)


class Unpackable(ValueError):
    """A command the packed format cannot carry; ``NativeCore.apply`` gives it to the reference."""


class Packed:
    """Commands as the native core reads them: ``records`` (64 bytes each), ``blob`` (their strings) and the
    command objects themselves (for journaling and for wording refusals)."""

    __slots__ = ("records", "blob", "commands")

    def __init__(self, records: bytes, blob: bytes, commands: list):
        self.records = records
        self.blob = blob
        self.commands = commands

    def __len__(self) -> int:
        return len(self.commands)


def _int64(value) -> bool:
    return type(value) is int and _I64[0] <= value <= _I64[1]


def pack(commands: Iterable) -> Packed:
    """NewOrder and CancelOrder objects as one packed batch; ``Unpackable`` names the first that cannot be.
    (In C when the extension is built; ``_pack_python`` is the same in Python, byte for byte.)"""
    commands = list(commands)
    if _nativecore is None:
        return _pack_python(commands)
    records, blob, bad = _nativecore.pack(commands)
    if bad >= 0:
        raise Unpackable(bad)
    return Packed(records, blob, commands)


def _pack_python(commands: list) -> Packed:
    records = bytearray(RECORD * len(commands))
    blob = bytearray()
    # A string object met again is written once: remembered by identity in a direct-mapped table of 512, as
    # _nativecore.pack does (so that the two give the same bytes).
    seen: list = [None] * 512
    pack_into = _record.pack_into

    def text(value: str) -> int:
        slot = (id(value) >> 4) & 511
        known = seen[slot]
        if known is not None and known[0] is value:
            return known[1]
        data = value.encode("utf-8", "surrogatepass")
        if len(data) >= _STR_LIMIT:
            raise Unpackable("string too long")
        ref = (len(blob) << 24) | len(data)
        blob.extend(data)
        seen[slot] = (value, ref)
        return ref

    def once(value: str) -> int:  # a key: never repeated, so not worth remembering
        data = value.encode("utf-8", "surrogatepass")
        if len(data) >= _STR_LIMIT:
            raise Unpackable("key too long")
        ref = (len(blob) << 24) | len(data)
        blob.extend(data)
        return ref

    for index, command in enumerate(commands):
        try:
            _pack_one(index, command, records, blob, text, once, pack_into)
        except Unpackable:
            raise Unpackable(index) from None
    return Packed(bytes(records), bytes(blob), commands)


def _pack_one(index, command, records, blob, text, once, pack_into) -> None:
    kind = type(command)
    if kind is not c.NewOrder and kind is not c.CancelOrder:
        raise Unpackable(index)
    key, member, at_us = command.key, command.member_id, command.at_us
    if type(key) is not str or type(member) is not str or not _int64(at_us):
        raise Unpackable(index)
    if kind is c.NewOrder:
        side = _SIDES.get(command.side) if type(command.side) is str else None
        order_type = _TYPES.get(command.order_type) if type(command.order_type) is str else None
        tif = _TIFS.get(command.tif) if type(command.tif) is str else None
        product, lots, price = command.product_id, command.lots, command.price_fen
        if (side is None or order_type is None or tif is None or type(product) is not str or not _int64(lots)
                or not _int64(price)):
            raise Unpackable(index)
        word = K_NEW | side << 8 | order_type << 16 | tif << 24
        receipts = command.receipt_ids
        listed = 0
        if type(receipts) in (tuple, list):
            if receipts:
                if any(type(rid) is not str for rid in receipts) or len(receipts) >= _STR_LIMIT:
                    raise Unpackable(index)
                refs = [text(rid) for rid in receipts]
                listed = (len(blob) << 24) | len(refs)
                blob.extend(struct.pack(f"<{len(refs)}q", *refs))
        elif side == 1:
            if receipts:  # truthy and neither tuple nor list: the reference would refuse it; keep its words
                raise Unpackable(index)
        else:
            word |= FLAG_RECEIPTS_NOT_LIST
        pack_into(records, index * RECORD, word, at_us, once(key), text(member), text(product), lots, price,
                  listed)
    elif kind is c.CancelOrder:
        order_id = command.order_id
        if not _int64(order_id):
            raise Unpackable(index)
        pack_into(records, index * RECORD, K_CANCEL, at_us, once(key), text(member), order_id, 0, 0, 0)
    else:
        raise Unpackable(index)


# ---------------------------------------------------------------- refusals, worded by reasons.Refused


def _rejection(command, reason: int, words: tuple, names: list):
    code = REASONS[reason]
    if code == "invalid_key":
        return Refused(code, field="key").rejection
    if code == "invalid_time":
        return Refused(code, field="at_us").rejection
    if code == "unknown_member":
        return Refused(code, field="member_id", member=command.member_id).rejection
    if code == "not_your_order":
        return Refused(code, field="order_id", order=command.order_id, member=command.member_id).rejection
    if code == "unknown_order":
        return Refused(code, field="order_id", order=command.order_id).rejection
    # the rest belong to new orders
    if code == "unknown_product":
        return Refused(code, field="product_id", product=command.product_id).rejection
    if code == "member_suspended":
        return Refused(code, field="member_id", member=command.member_id).rejection
    if code == "product_suspended":
        return Refused(code, field="product_id", product=command.product_id).rejection
    if code == "market_order_tif":
        return Refused(code, field="tif").rejection
    if code == "tif_not_allowed_in_auction":
        return Refused(code, field="tif").rejection
    if code == "market_closed":
        return Refused(code, field="product_id", product=command.product_id, phase=PHASE_NAMES[words[2]]).rejection
    if code == "non_positive_quantity":
        return Refused(code, field="lots", lots=command.lots).rejection
    if code == "quantity_above_maximum":
        return Refused(code, field="lots", lots=command.lots, maximum=words[2]).rejection
    if code == "non_positive_price":
        return Refused(code, field="price_fen", price=command.price_fen).rejection
    if code == "off_tick_price":
        return Refused(code, field="price_fen", price=command.price_fen, tick=words[2]).rejection
    if code == "no_reference_price":
        return Refused(code, field="price_fen", product=command.product_id).rejection
    if code == "price_outside_band":
        return Refused(code, field="price_fen", price=command.price_fen, low=words[2], high=words[3]).rejection
    if code == "no_receipts_for_buy":
        return Refused(code, field="receipt_ids").rejection
    if code == "insufficient_cash":
        return Refused(code, field="lots", needed=_i128(words[2], words[3]),
                       available=_i128(words[4], words[5])).rejection
    if code == "insufficient_receipts":
        return Refused(code, field="receipt_ids", needed=command.lots, available=words[2]).rejection
    rid = command.receipt_ids[words[2]]
    if code == "receipt_not_owned":
        return Refused(code, field="receipt_ids", receipt=rid, member=command.member_id).rejection
    if code == "receipt_wrong_product":
        return Refused(code, field="receipt_ids", receipt=rid, receipt_product=names[words[3]],
                       product=command.product_id).rejection
    return Refused(code, field="receipt_ids", receipt=rid).rejection  # unknown, encumbered, listed twice


# ---------------------------------------------------------------- results


class Batch:
    """What one ``NativeCore.run`` produced: one 64-byte result record per command (``results``) and the event
    records (``events``), decoded into the reference's objects only on request."""

    __slots__ = ("packed", "results", "events", "_core", "_names", "_tail", "_done")

    def __init__(self, packed: Packed, done: int, results: bytes, events: bytes, core, names: list, tail: list):
        self.packed = packed
        self._done = done
        self.results = results
        self.events = events
        self._core = core
        self._names = names  # the core's string table as of this batch's load (completed before any reload)
        self._tail = tail  # outcomes of the commands after the first the native core declined

    def _strings(self) -> list:
        names = self._names
        if self._core is not None and names is self._core._names:
            self._core.names()  # extends this very list up to the present
        return names

    def __len__(self) -> int:
        return len(self.packed)

    def _words(self, index: int) -> tuple:
        return _record.unpack_from(self.results, index * RECORD)

    def fresh(self, index: int) -> bool:
        if index >= self._done:
            return self._tail[index - self._done].fresh
        return bool(self._words(index)[0] >> 8 & 1)

    def sequence(self, index: int) -> int:
        """The command's sequence number (0 for a refusal); a duplicate answers its first sequence."""
        if index >= self._done:
            return self._tail[index - self._done].ack.sequence
        return self._words(index)[1]

    def fresh_sequences(self) -> list[tuple[int, int]]:
        """(index, sequence) of every fresh command, in order: what a journal must write."""
        words = memoryview(self.results).cast("q") if self._done else ()
        found = [(i, words[i * 8 + 1]) for i in range(self._done) if words[i * 8] >> 8 & 1]
        found += [(self._done + i, o.ack.sequence) for i, o in enumerate(self._tail) if o.fresh]
        return found

    def fresh_count(self) -> int:
        return len(self.fresh_sequences())

    def outcome(self, index: int) -> Outcome:
        if index >= self._done:
            return self._tail[index - self._done]
        if AVAILABLE:
            [outcome] = _nativecore.decode(self.results, self.events, self.packed.commands, self._strings(), index,
                                           index + 1)
            if outcome is not None:
                return outcome
        return self.decode_python(index)

    def outcomes(self) -> list[Outcome]:
        """Every command's Outcome, in order (built in C; refusals are worded here)."""
        if not AVAILABLE or not self._done:
            return [self.outcome(index) for index in range(len(self))]
        built = _nativecore.decode(self.results, self.events, self.packed.commands, self._strings(), 0, self._done)
        for index, outcome in enumerate(built):
            if outcome is None:
                built[index] = self.decode_python(index)
        return built + self._tail

    def decode_python(self, index: int) -> Outcome:
        """``outcome(index)`` in Python: the specification of the C decoder, and the wording of refusals."""
        words = self._words(index)
        command = self.packed.commands[index]
        status = words[0] & 0xFF
        if status == ST_REJECTED:
            rejection = _rejection(command, words[0] >> 16 & 0xFF, words, self._strings())
            return Outcome(Ack(command.key, command.member_id, 0, "rejected", rejection=rejection), [], False)
        trades = tuple(range(words[4], words[4] + words[5]))
        ack = Ack(command.key, command.member_id, words[1], STATUS_NAMES[status], words[2], words[3], trades)
        if not words[0] >> 8 & 1:
            return Outcome(ack, [], False)
        events = self._decode(words[6], words[7])
        if type(command) is c.NewOrder:  # its acceptance, which the native core does not write out
            events.insert(0, OrderAccepted(words[1], words[1], command.member_id, command.product_id, command.side,
                                           command.order_type, command.tif, command.price_fen, command.lots,
                                           command.at_us))
        return Outcome(ack, events, True)

    def _decode(self, start: int, count: int) -> list:
        if not count:
            return []
        names = self._strings()
        events: list = []
        deliveries: list = []
        trade = None
        for e in _unpack_records(self.events[start * RECORD:(start + count) * RECORD]):
            kind = e[0] & 0xFF
            if kind == EV_CANCELLED:
                events.append(OrderCancelled(e[1], e[2], names[e[3] & 0xFFFFFFFF], names[e[3] >> 32], e[4],
                                             CANCEL_REASONS[e[0] >> 8 & 0xFF]))
            elif kind == EV_TRADE:
                trade = e
            elif kind == EV_SETTLE:
                t = trade
                product, buyer, seller = names[t[0] >> 32], names[t[7] & 0xFFFFFFFF], names[t[7] >> 32]
                events.append(TradeExecuted(t[1], t[2], product, t[3], t[4], t[5], t[6], buyer, seller,
                                            SIDE_NAMES[t[0] >> 8 & 0xFF], e[1]))
                events.append(SettlementInstruction(t[1], t[2], product, buyer, seller, _i128(e[2], e[3]),
                                                    _i128(e[4], e[5]), _i128(e[6], e[7]), tuple(deliveries)))
                deliveries = []
            elif kind == EV_DELIVERY:
                deliveries.append(ReceiptDelivery(names[e[1]], e[2], e[3]))
            elif kind == EV_SPLIT:
                events.append(ReceiptSplit(e[1], names[e[2]], names[e[3]], e[4], e[5] & 0xFFFFFFFF, names[e[6]],
                                           e[7], e[5] >> 32))
        return events


class _ObjectBatch(Batch):
    """A batch the reference ran command by command (the state did not fit the native bounds)."""

    __slots__ = ()

    def __init__(self, packed: Packed, outcomes: list):
        super().__init__(packed, 0, b"", b"", None, [], outcomes)



# ---------------------------------------------------------------- the core


class NativeCore:
    """The matching core with new orders and cancels in native state; the reference for everything else. Same
    commands, same acknowledgements and events (as values), same state hash as ``ReferenceCore``."""

    def __init__(self) -> None:
        self._ref = ReferenceCore()
        self._book = _nativecore.Book() if AVAILABLE else None
        self._py_valid = True      # self._ref holds the current state
        self._native_valid = False  # self._book holds the current state
        self._native_refused = False  # the current state does not fit the native bounds
        self._statics: dict = {}    # per product, the to_state fields the native core does not keep
        self._names: list[str] = []
        self.declined = 0  # commands run by the reference (for tests and the bench)

    # ------------------------------------------------------------ moving the state

    def _to_native(self) -> bool:
        if self._native_valid:
            return True
        if self._native_refused or self._book is None:
            return False
        state = self._ref.to_state()
        if self._book.loaded:
            self.names()  # complete the table the batches made so far refer to, before load() renumbers
        if not self._book.load(_flatten(state, self._statics)):
            self._native_refused = True
            return False
        self._names = []
        self._native_valid = True
        return True

    def _to_python(self) -> ReferenceCore:
        if not self._py_valid:
            self._ref = ReferenceCore.from_state(self._native_state())
            self._py_valid = True
        return self._ref

    def _native_state(self) -> dict:
        (sequence, trade_count, centre, deposited, withdrawn, grams_in, grams_out), members, products, receipts, \
            acks = self._book.dump()
        statics = self._statics
        return {
            "format": 1, "sequence": sequence, "trade_count": trade_count, "centre_fees_fen": centre,
            "deposited_fen": deposited, "withdrawn_fen": withdrawn, "grams_registered": grams_in,
            "grams_out": grams_out,
            "products": {pid: dict(statics[pid], phase=phase, bids=bids, asks=asks)
                         for pid, phase, bids, asks in sorted(products)},
            "members": {mid: [available, locked, suspended]
                        for mid, available, locked, suspended in sorted(members)},
            "receipts": dict(sorted(receipts)),
            "acks": sorted(acks),
        }

    def load_native(self) -> bool:
        """Move the state into the native core now (``run`` would do it at its first batch); False if it does not
        fit the native bounds and stays with the reference."""
        return self._to_native()

    def names(self) -> list[str]:
        """The native string table (member, product, receipt ids by id), extended to the present."""
        names = self._names
        names.extend(self._book.names(len(names)))
        return names

    # ------------------------------------------------------------ entry points

    def run(self, packed: Packed) -> Batch:
        """Run a packed batch of orders and cancels."""
        if not self._to_native():
            outcomes = [self._apply_reference(command) for command in packed.commands]
            return _ObjectBatch(packed, outcomes)
        done, results, events = self._book.run(packed.records, packed.blob)
        if done:
            self._py_valid = False
        tail = []
        if done < len(packed):  # declined (the native tables are full): the reference carries on
            self._native_valid = False
            tail = [self._apply_reference(command) for command in packed.commands[done:]]
        return Batch(packed, done, results, events, self, self._names, tail)

    def apply(self, command) -> Outcome:
        kind = type(command)
        if kind is c.NewOrder or kind is c.CancelOrder:
            try:
                packed = pack((command,))
            except Unpackable:
                packed = None
            if packed is not None and self._to_native():
                done, results, events = self._book.run(packed.records, packed.blob)
                if done:
                    self._py_valid = False
                    return Batch(packed, 1, results, events, self, self._names, []).outcome(0)
                self._native_valid = False
        return self._apply_reference(command)

    def _apply_reference(self, command) -> Outcome:
        self.declined += 1
        outcome = ReferenceCore.apply(self._to_python(), command)
        if outcome.fresh:
            self._native_valid = False
            self._native_refused = False
        return outcome

    # ------------------------------------------------------------ the reference's views, on its state

    @property
    def sequence(self) -> int:
        return self._book.sequence if self._native_valid else self._ref.sequence

    @property
    def trade_count(self) -> int:
        return self._book.trade_count if self._native_valid else self._ref.trade_count

    @property
    def native(self) -> bool:
        """Whether the state is native now (else it did not fit, or a reference command ran last)."""
        return self._native_valid

    def reference(self) -> ReferenceCore:
        """The state as a ReferenceCore (built from the native state if needed; treat it as read-only)."""
        return self._to_python()

    def to_state(self) -> dict:
        return self._native_state() if self._native_valid else self._ref.to_state()

    def canonical_bytes(self) -> bytes:
        return self._to_python().canonical_bytes()

    def state_hash(self) -> str:
        return self._to_python().state_hash()

    def check_invariants(self) -> None:
        self._to_python().check_invariants()

    def best_bid(self, product_id: str) -> int:
        return self._to_python().best_bid(product_id)

    def best_ask(self, product_id: str) -> int:
        return self._to_python().best_ask(product_id)

    def depth(self, product_id: str) -> dict:
        return self._to_python().depth(product_id)

    def queue(self, product_id: str, side: str, price: int) -> list[int]:
        return self._to_python().queue(product_id, side, price)

    @classmethod
    def from_state(cls, state: dict) -> NativeCore:
        core = cls()
        core._ref = ReferenceCore.from_state(state)
        return core


def _flatten(state: dict, statics: dict) -> tuple:
    """The to_state picture as the tuples _nativecore.Book.load reads; fills ``statics`` with what it keeps."""
    statics.clear()
    products, orders = [], []
    for pid, data in state["products"].items():
        statics[pid] = {name: value for name, value in data.items() if name not in ("phase", "bids", "asks")}
        # the band exactly as Product computes it
        definition = c.DefineProduct("", 0, pid, data["tick_fen"], data["units_per_lot"], data["max_order_lots"],
                                     data["band_ppm"], c.FeeSchedule(*data["buyer_fee"]),
                                     c.FeeSchedule(*data["seller_fee"]))
        product = Product(definition)
        if data["settlement_price"]:
            product.set_settlement_price(data["settlement_price"])
        products.append((pid, data["tick_fen"], data["units_per_lot"], data["max_order_lots"], data["band_ppm"],
                         data["buyer_fee"][0], data["buyer_fee"][1], data["seller_fee"][0], data["seller_fee"][1],
                         data["suspended"], data["settlement_price"], product.band_low, product.band_high,
                         data["phase"]))
        for side_index, name in ((0, "bids"), (1, "asks")):
            for level in data[name]:
                for row in level:
                    orders.append((pid, side_index, tuple(row)))
    counters = (state["sequence"], state["trade_count"], state["centre_fees_fen"], state["deposited_fen"],
                state["withdrawn_fen"], state["grams_registered"], state["grams_out"])
    members = tuple((mid, *row) for mid, row in state["members"].items())
    receipts = tuple((rid, *row) for rid, row in state["receipts"].items())
    acks = tuple((row[0], row[1], row[2], row[3], row[4], row[5], tuple(row[6])) for row in state["acks"])
    return counters, members, tuple(products), receipts, tuple(orders), acks, _child_ids_may_clash(state["receipts"])


def _child_ids_may_clash(receipts: dict) -> bool:
    """Whether a receipt id looks like a split's child's id ("<x>.<n>") without being one, or beyond its parent's
    children: a new split could then write an id that already names a receipt (the reference's dict overwrites
    it), and the native core must enter every child's id in its string hash to do the same."""
    for rid, row in receipts.items():
        prefix, dot, suffix = rid.rpartition(".")
        if dot and suffix.isascii() and suffix.isdigit() and suffix[0] != "0":
            parent = receipts.get(prefix)
            if row[5] != prefix or parent is None or int(suffix) > parent[6]:
                return True
    return False
