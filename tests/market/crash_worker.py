"""Runs the journaled engine over a seeded order stream and prints each acknowledgement as a JSON line the moment
the engine releases it (that is, after its journal batch is on disk). The crash-recovery test SIGKILLs it mid-stream.

Usage: python -m tests.market.crash_worker DIRECTORY SEED COUNT BATCH_SIZE
"""
from __future__ import annotations

import json
import sys

from ingot.market.engine.journal import JournaledEngine
from tests.market.helpers import random_stream, setup_commands


def main(directory: str, seed: int, count: int, batch_size: int) -> None:
    engine = JournaledEngine(directory, batch_size=batch_size)
    out = sys.stdout
    for command in setup_commands() + random_stream(seed, count):
        for outcome in engine.submit(command):
            ack = outcome.ack
            out.write(json.dumps({"key": ack.key, "member": ack.member_id, "sequence": ack.sequence,
                                  "status": ack.status, "order_id": ack.order_id, "filled": ack.filled_lots,
                                  "trade_ids": list(ack.trade_ids)}) + "\n")
        out.flush()
    for outcome in engine.close():
        out.write(json.dumps({"key": outcome.ack.key, "late": True}) + "\n")
    out.flush()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
