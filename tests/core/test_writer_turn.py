"""The SQLite writers' turn is first come, first served: a writer that gives the turn back cannot take it again
ahead of one that was waiting (the order desk commits and writes again at once, and a login's audit entry must not
wait behind it until its timeout)."""
from __future__ import annotations

import threading

from ingot.core.db import _WriterTurn


def _wait_until(condition) -> None:
    for _ in range(2000):
        if condition():
            return
        threading.Event().wait(0.005)
    raise AssertionError("the waiting writer never queued")


def _queue_waiter(turn: _WriterTurn, log: list, name: str) -> threading.Thread:
    def wait() -> None:
        if turn.acquire(timeout=30):
            log.append(name)
            turn.release()

    thread = threading.Thread(target=wait)
    before = len(turn._waiting)
    thread.start()
    _wait_until(lambda: len(turn._waiting) == before + 1)
    return thread


def test_a_release_hands_the_turn_to_the_writer_waiting_longest():
    turn = _WriterTurn()
    assert turn.acquire(timeout=0)
    log: list[str] = []
    first = _queue_waiter(turn, log, "first")
    second = _queue_waiter(turn, log, "second")

    turn.release()
    # Handed over: the writer that let go cannot barge back in, though it asks at once.
    assert turn.locked()
    assert not turn.acquire(timeout=0)
    assert turn.acquire(timeout=30)  # it queues behind the two and gets its turn after them
    log.append("releaser")
    turn.release()
    first.join(10)
    second.join(10)
    assert log == ["first", "second", "releaser"]
    assert not turn.locked()


def test_a_writer_that_gives_up_waiting_leaves_the_queue():
    turn = _WriterTurn()
    assert turn.acquire(timeout=0)
    assert not turn.acquire(timeout=0.01)
    assert len(turn._waiting) == 0
    turn.release()
    assert not turn.locked()
    assert turn.acquire(timeout=0)
    turn.release()
