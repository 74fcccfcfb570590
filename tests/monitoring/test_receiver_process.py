"""The receiver process's runner: the event loop it picks and the garbage-collector settings it applies."""
from __future__ import annotations

import asyncio
import gc

import pytest

from ingot.monitoring.receiver import run_receiver_process


@pytest.fixture
def restore_gc():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_runs_on_uvloop_when_installed_and_tunes_the_collector(restore_gc, monkeypatch):
    uvloop = pytest.importorskip("uvloop")
    monkeypatch.delenv("INGOT_ASYNCIO_LOOP", raising=False)
    assert run_receiver_process(_loop_module()).startswith("uvloop")
    assert gc.get_threshold() == (50_000, 50, 50)
    assert gc.get_freeze_count() > 0  # what existed at start is out of the collector's scans
    assert uvloop is not None


def test_the_standard_loop_on_request(restore_gc, monkeypatch):
    monkeypatch.setenv("INGOT_ASYNCIO_LOOP", "asyncio")
    assert run_receiver_process(_loop_module()).startswith("asyncio")
