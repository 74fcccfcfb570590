"""Group commit: the units of work of a busy write endpoint run one after another on one thread, several to a
transaction, each in a savepoint of its own.

Every order used to be its own transaction on a worker thread of its own. The writers took the database's write
lock one at a time anyway (the matching core's journal head is one row), so forty threads each held an order and
queued for that lock while sharing the interpreter lock with the one that had it: at 500 orders/s a fifth of the
server's samples waited in the lock's queue and the median answer took 64–84 ms (2 ms with this; see
docs/benchmarks.md).

A `GroupCommit` takes whatever has queued while the previous transaction ran, opens one transaction (`begin`, which
takes the write lock first: the batch is going to write, and on SQLite a savepoint must be inside a transaction
pysqlite knows of, not begin one), and runs each unit of work in a savepoint:

- a unit of work that raises rolls back its savepoint only, and its caller gets that exception, as from a
  transaction of its own;
- after the last one the transaction commits once, and only then does any caller get an answer, so nothing is
  acknowledged before it is durable;
- a commit the database refuses rolls the whole batch back and every caller whose work had succeeded gets the
  commit's exception: none of them is stored, and none is told otherwise.

A unit of work sees what the earlier ones of its batch wrote, as it would see them committed had it run after them.
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Callable, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from ingot.core.auth import Principal, principal_of_user_id

T = TypeVar("T")

# At most this many units of work share a transaction: a longer batch keeps the first caller waiting for the last.
MAX_BATCH = 32
# A thread with nothing to do for this long ends (a new one starts with the next unit of work), so engines that
# tests or a restore dispose of leave no thread behind for long.
IDLE_SECONDS = 5.0


class _Item:
    __slots__ = ("user_id", "work", "future")

    def __init__(self, user_id: int, work: Callable[[Session, Principal], object]) -> None:
        self.user_id, self.work, self.future = user_id, work, Future()


class GroupCommit:
    def __init__(self, factory: sessionmaker[Session], begin: Callable[[Session], object], *, name: str,
                 max_batch: int = MAX_BATCH, idle_seconds: float = IDLE_SECONDS) -> None:
        self._factory, self._begin, self._name = factory, begin, name
        self._max_batch, self._idle_seconds = max_batch, idle_seconds
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._guard = threading.Lock()
        self._running = False
        # Batches and units of work run so far (tests read them).
        self.batches = 0
        self.units = 0

    def submit(self, user_id: int, work: Callable[[Session, Principal], T]) -> "Future[T]":
        """Queue `work(session, principal)` for the caller `user_id`; the future holds its result once the
        transaction it ran in has committed, or the exception it (or that commit) raised."""
        item = _Item(user_id, work)
        self._queue.put(item)
        with self._guard:
            if not self._running:
                self._running = True
                threading.Thread(target=self._serve, name=self._name, daemon=True).start()
        return item.future

    def _serve(self) -> None:
        try:
            self._serve_until_idle()
        finally:
            with self._guard:
                self._running = False

    def _serve_until_idle(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._guard:
                    # Something queued after the timeout but before the guard was taken finds `_running` still
                    # set and starts no thread: look once more, under the guard.
                    if self._queue.empty():
                        self._running = False
                        return
                continue
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._run(batch)

    def _run(self, batch: list[_Item]) -> None:
        batch = [item for item in batch if item.future.set_running_or_notify_cancel()]
        if not batch:
            return
        done: list[tuple[_Item, object, BaseException | None]] = []
        session = self._factory()
        try:
            self._begin(session)
            for item in batch:
                try:
                    with session.begin_nested():
                        result = item.work(session, principal_of_user_id(session, item.user_id))
                except Exception as error:  # the caller gets it, as from a transaction of its own
                    done.append((item, None, error))
                else:
                    done.append((item, result, None))
            session.commit()
        except BaseException as error:
            session.rollback()
            refused = {id(item): own for item, _result, own in done if own is not None}
            for item in batch:
                item.future.set_exception(refused.get(id(item), error))
            if not isinstance(error, Exception):
                raise
            return
        finally:
            session.close()
            self.batches += 1
            self.units += len(batch)
        for item, result, error in done:
            if error is None:
                item.future.set_result(result)
            else:
                item.future.set_exception(error)
