"""The matching core behind the database: the `market_engine_commands` table is the core's journal.

Each process keeps one core in memory per database. A command runs inside the caller's transaction:

1. the `market_engine_head` row is updated first, which takes the writers' lock on SQLite and PostgreSQL alike
   (on SQLite the process's writers first take turns on a Python lock, see `core.db._take_turns_to_write`);
2. the in-memory core is brought level with the committed head (replaying later commands, or rebuilt from the
   newest snapshot when it ran ahead of a transaction that rolled back);
3. the core applies the command; a fresh command is stored with its sequence and a new token, the head moves on,
   and the caller persists the events (orders, trades, settlement) in the same transaction.

So the command, its acknowledgement and its settlement commit together or not at all, and a core that saw a command
whose transaction later failed notices the token mismatch and rebuilds from what was committed.
"""
from __future__ import annotations

import json
import threading
import weakref
import uuid
from dataclasses import dataclass, field

from sqlalchemy import event, insert, select, update
from sqlalchemy.orm import Session

from ingot.market.engine import MatchingCore, Outcome
from ingot.market.engine.journal import decode_command, encode_command
from ingot.market.models import EngineCommand, EngineHead, EngineSnapshot

HEAD_ID = 1
_HEAD = EngineHead.__table__
_COMMANDS = EngineCommand.__table__
# The statements every command runs, built once: SQLAlchemy memoises a statement object's cache key, and building and
# keying them per command cost about as much as running them.
# A no-op update is the portable way to take the write lock before reading anything; it returns the head.
_LOCK_HEAD = (update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(sequence=_HEAD.c.sequence)
              .returning(_HEAD.c.sequence, _HEAD.c.token))
_READ_HEAD = select(_HEAD.c.sequence, _HEAD.c.token).where(_HEAD.c.id == HEAD_ID)
_JOURNAL = insert(_COMMANDS)
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.id == HEAD_ID)


@dataclass
class _Held:
    core: MatchingCore = field(default_factory=MatchingCore)
    token: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)
    # The core holds commands of a transaction not yet committed; readers use it as it is rather than rebuild.
    in_flight: bool = False
    # A transaction whose commands the core holds rolled back: the next user rebuilds.
    stale: bool = False
    # Whether the core has been loaded from the database at all; a process starts from the newest snapshot.
    loaded: bool = False
    # The sequence of the snapshot the core was last rebuilt from (0: from an empty core and the whole journal).
    snapshot_sequence: int = 0


_cores: dict[str, _Held] = {}
_cores_lock = threading.Lock()


# The same, by engine object: rendering the URL was a measurable part of every command.
_cores_by_engine: "weakref.WeakKeyDictionary[object, _Held]" = weakref.WeakKeyDictionary()


def _held_for(session: Session) -> _Held:
    bind = session.get_bind()
    held = _cores_by_engine.get(bind)
    if held is not None:
        return held
    url = bind.url.render_as_string(hide_password=False)
    with _cores_lock:
        held = _cores.get(url)
        if held is None:
            held = _cores[url] = _Held()
        _cores_by_engine[bind] = held
        return held


def forget_cores() -> None:
    """Drop every in-memory core (tests, and after restoring a database)."""
    with _cores_lock:
        _cores.clear()
        _cores_by_engine.clear()


# A session whose transaction fed the core: (its core, the innermost transaction of each command it fed, in order).
_FED = "market_engine_fed"

# How a transaction that fed the core ends is learnt by listeners on the Session class,
# registered once, which find what to do in the ending session's `info`: listeners added to each session cost a
# measurable part of every order (each request has a session of its own, and adding a listener is not cheap).


@event.listens_for(Session, "after_commit")
def _fed_transaction_committed(ended: Session) -> None:
    if ended.in_nested_transaction():
        # A savepoint released (a group commit's request done): its commands are still not committed.
        return
    fed = ended.info.pop(_FED, None)
    if fed is not None:
        held = fed[0]
        with held.lock:
            held.in_flight = False


# The head this session's transaction holds the writers' lock on: (the root transaction, (sequence, token)).
_HEAD_KNOWN = "market_engine_head_known"


@event.listens_for(Session, "after_soft_rollback")
def _fed_transaction_rolled_back(ended: Session, rolled_back) -> None:
    """A rollback makes the core stale only when it undid commands the core holds: a savepoint that fed the core
    (or one inside it, or the whole transaction). A group commit's batch rolls back the savepoint of every request
    it refuses, most of which never reached the core, while earlier requests' commands stay in the transaction.
    Any rollback may have undone a move of the head (and on PostgreSQL the lock, if a savepoint took it), so the head
    is read, and locked, again."""
    ended.info.pop(_HEAD_KNOWN, None)
    fed = ended.info.get(_FED)
    if fed is None:
        return
    held, feeders = fed
    kept = [feeder for feeder in feeders if not _within(feeder, rolled_back)]
    if len(kept) == len(feeders):
        return
    with held.lock:
        held.stale = True
    if kept:
        feeders[:] = kept
    else:
        del ended.info[_FED]


def _within(transaction, ancestor) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


def begin_writing(session: Session) -> None:
    """Take the writers' lock for a transaction that is about to feed the core (a group commit's batch opens its
    transaction with it)."""
    _head(session, lock=True)


def _head(session: Session, *, lock: bool) -> tuple[int, str]:
    """The committed head (sequence, token); with `lock`, after taking the writers' lock.

    A transaction that holds the lock already knows the head (it read it when it took the lock and wrote every move
    since), so the lock is taken once per transaction: a group commit's batch would otherwise lock again for each
    request, one round trip more per order on PostgreSQL."""
    if lock:
        known = session.info.get(_HEAD_KNOWN)
        if known is not None and known[0] is session.get_transaction():
            return known[1]
    # Core statements on the session's connection: the ORM's execution path costs more than these statements do.
    connection = session.connection()
    if lock:
        row = connection.execute(_LOCK_HEAD).first()
        if row is None:
            connection.execute(insert(_HEAD).values(id=HEAD_ID, sequence=0, token=""))
            row = (0, "")
        head = int(row[0]), row[1]
        session.info[_HEAD_KNOWN] = (session.get_transaction(), head)
        return head
    else:
        row = connection.execute(_READ_HEAD).first()
        if row is None:
            return 0, ""
    return int(row[0]), row[1]


def _rebuild(session: Session, held: _Held) -> None:
    snapshot = session.scalar(select(EngineSnapshot).order_by(EngineSnapshot.sequence.desc()).limit(1))
    if snapshot is None:
        held.core, held.token, held.snapshot_sequence = MatchingCore(), "", 0
    else:
        core = MatchingCore.from_state(json.loads(snapshot.state))
        if core.state_hash() != snapshot.state_hash:
            raise RuntimeError(f"engine snapshot {snapshot.sequence} does not reproduce its state hash")
        held.core, held.token, held.snapshot_sequence = core, snapshot.token, snapshot.sequence
    held.loaded = True


def rebuilt_from_snapshot(session: Session) -> int:
    """The sequence of the snapshot this process's core was last rebuilt from, bringing it level first."""
    held = _held_for(session)
    read_core(session, lambda core: None)
    return held.snapshot_sequence


def _catch_up(session: Session, held: _Held, head: tuple[int, str], *, writer: bool) -> None:
    head_sequence, head_token = head
    if held.stale or not held.loaded:
        # A fresh process (or one whose transaction rolled back) starts from the newest snapshot, then replays.
        held.stale = held.in_flight = False
        _rebuild(session, held)
    elif held.core.sequence == head_sequence and held.token == head_token:
        return
    core = held.core
    if core.sequence > head_sequence:
        if not writer and held.in_flight:
            # Another thread's transaction is between apply and commit; its outcome will be signalled.
            return
        _rebuild(session, held)
    elif core.sequence:
        own = session.get(EngineCommand, core.sequence)
        if own is None or own.token != held.token:
            _rebuild(session, held)
    replay = session.scalars(
        select(EngineCommand).where(EngineCommand.sequence > held.core.sequence).order_by(EngineCommand.sequence)
    )
    for row in replay:
        sequence, command = decode_command(row.payload)
        outcome = held.core.apply(command)
        if not outcome.fresh or outcome.ack.sequence != sequence:
            raise RuntimeError(f"engine replay diverged at sequence {sequence}")
        held.token = row.token
    if held.core.sequence != head_sequence:
        raise RuntimeError(f"engine journal ends at {held.core.sequence}, head says {head_sequence}")


def execute(session: Session, command) -> Outcome:
    """Apply one command in the caller's transaction, journaling it when it is fresh."""
    held = _held_for(session)
    head = _head(session, lock=True)
    with held.lock:
        _catch_up(session, held, head, writer=True)
        outcome = held.core.apply(command)
        if outcome.fresh:
            _watch_transaction(session, held)
            token = uuid.uuid4().hex
            sequence = outcome.ack.sequence
            connection = session.connection()
            connection.execute(_JOURNAL, {"sequence": sequence, "token": token,
                                          "payload": encode_command(sequence, command)})
            connection.execute(_MOVE_HEAD, {"sequence": sequence, "token": token})
            session.info[_HEAD_KNOWN] = (session.get_transaction(), (sequence, token))
            held.token = token
            session.flush()
        return outcome


def _watch_transaction(session: Session, held: _Held) -> None:
    """Learn how the transaction that fed the core ends: a commit settles it, a rollback makes the core stale (the
    Session-class listeners above)."""
    held.in_flight = True
    # The innermost transaction (a request's savepoint in a group commit) is what a rollback must undo to undo this.
    feeder = session.get_nested_transaction() or session.get_transaction()
    feeders = session.info.setdefault(_FED, (held, []))[1]
    if not feeders or feeders[-1] is not feeder:
        feeders.append(feeder)


def read_core(session: Session, reader):
    """Run `reader(core)` on a core level with the committed journal, under the process lock."""
    held = _held_for(session)
    head = _head(session, lock=False)
    with held.lock:
        _catch_up(session, held, head, writer=False)
        return reader(held.core)


def read_fed_core(session: Session, reader):
    """`read_core` for a transaction that has just fed the core: it holds the writers' lock on the head, so no other
    writer has moved the core since, and other readers leave an in-flight core alone; the head need not be read
    again. Any other transaction reads through `read_core`."""
    held = _held_for(session)
    if session.info.get(_FED):
        with held.lock:
            if held.in_flight and not held.stale:
                return reader(held.core)
    return read_core(session, reader)


def snapshot(session: Session) -> EngineSnapshot:
    """Store the core's canonical state so that later rebuilds replay only what follows."""
    held = _held_for(session)
    head = _head(session, lock=True)
    with held.lock:
        _catch_up(session, held, head, writer=True)
        held.core.check_invariants()
        existing = session.get(EngineSnapshot, held.core.sequence)
        if existing is not None:
            return existing
        row = EngineSnapshot(sequence=held.core.sequence, token=held.token, state_hash=held.core.state_hash(),
                             state=json.dumps(held.core.to_state(), sort_keys=True, ensure_ascii=False))
        session.add(row)
        session.flush()
        return row
