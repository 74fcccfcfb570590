"""The journal: every accepted command, sequenced, made durable before its acknowledgement leaves the engine.

File layout in one directory:

* ``journal-<first sequence, 12 digits>.log`` — segments of records. A record is a little-endian header of two
  unsigned 32-bit integers, the payload length and the CRC-32 of the payload, followed by the payload: the canonical
  JSON array ``[sequence, command kind, field values...]``.
* ``snapshot-<sequence, 12 digits>.json`` — the core's canonical state after that sequence plus its SHA-256; taking a
  snapshot starts a new segment, and recovery loads the newest snapshot and replays only later records.

Group commit: records are buffered and written with one ``write`` and one ``fsync`` per batch (``batch_size``
commands, or ``flush()``); acknowledgements, refusals and duplicate answers are held until the batch before them is
durable, so nothing acknowledged can be lost and no answer reports state that could be lost.

A crash can tear only the unacknowledged tail of the last segment: recovery cuts it at the first short or
CRC-failing record. A bad record anywhere else is corruption and recovery stops with ``JournalCorrupt``.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import struct
import zlib
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from pathlib import Path

from ingot.market.engine import commands as c
from ingot.market.engine.core import MatchingCore, Outcome

HEADER = struct.Struct("<II")
_pack_header = HEADER.pack
crc32 = zlib.crc32
_SEGMENT_PREFIX = "journal-"
_SNAPSHOT_PREFIX = "snapshot-"

_COMMAND_TYPES = {
    cls.__name__: cls
    for cls in (
        c.DefineProduct, c.AdmitMember, c.DepositCash, c.WithdrawCash, c.RegisterReceipt, c.DeregisterReceipt,
        c.SetMemberSuspended, c.SetProductSuspended, c.SetSettlementPrice, c.SessionControl, c.NewOrder,
        c.CancelOrder, c.AmendOrder,
    )
}
_FIELD_NAMES = {name: tuple(f.name for f in dataclasses.fields(cls)) for name, cls in _COMMAND_TYPES.items()}
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_quote = encode_basestring_ascii


class JournalCorrupt(Exception):
    """The journal or a snapshot cannot be trusted; recovery refuses to guess."""


class JournalInUse(Exception):
    """Another engine holds this journal directory; two writers would interleave their records."""


def encode_command(sequence: int, command) -> bytes:
    """Canonical JSON. Orders and cancels are formatted directly (half the cost of the generic encoder); that is
    safe because only accepted commands are journaled, and acceptance proved every field's type."""
    kind = type(command)
    if kind is c.NewOrder:
        return (f'[{sequence},"NewOrder",{_quote(command.key)},{command.at_us},{_quote(command.member_id)},'
                f'{_quote(command.product_id)},{_quote(command.side)},{command.lots},{command.price_fen},'
                f'{_quote(command.order_type)},{_quote(command.tif)},'
                f'[{",".join(map(_quote, command.receipt_ids or ()))}]]').encode()
    if kind is c.CancelOrder:
        return (f'[{sequence},"CancelOrder",{_quote(command.key)},{command.at_us},{_quote(command.member_id)},'
                f'{command.order_id}]').encode()
    name = kind.__name__
    row = [sequence, name]
    for field_name in _FIELD_NAMES[name]:
        value = getattr(command, field_name)
        if isinstance(value, c.FeeSchedule):
            value = [value.per_lot_fen, value.rate_ppm]
        row.append(value)
    return _dumps(row).encode()


def decode_command(payload: bytes) -> tuple[int, object]:
    row = json.loads(payload)
    sequence, kind, values = row[0], row[1], row[2:]
    cls = _COMMAND_TYPES.get(kind)
    if cls is None:
        raise JournalCorrupt(f"unknown command kind {kind!r} at sequence {sequence}")
    arguments = dict(zip(_FIELD_NAMES[kind], values))
    if kind == "NewOrder":
        arguments["receipt_ids"] = tuple(arguments["receipt_ids"])
    elif kind == "DefineProduct":
        arguments["buyer_fee"] = c.FeeSchedule(*arguments["buyer_fee"])
        arguments["seller_fee"] = c.FeeSchedule(*arguments["seller_fee"])
    return sequence, cls(**arguments)


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_records(path: Path) -> tuple[list[bytes], int, bool]:
    """(payloads, offset of the end of the last good record, whether bytes after it were bad or short)."""
    data = path.read_bytes()
    payloads: list[bytes] = []
    offset = 0
    size = len(data)
    while offset < size:
        if offset + HEADER.size > size:
            return payloads, offset, True
        length, crc = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        end = start + length
        if end > size or zlib.crc32(data[start:end]) != crc:
            return payloads, offset, True
        payloads.append(data[start:end])
        offset = end
    return payloads, offset, False


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _numbered(directory: Path, prefix: str, suffix: str) -> list[tuple[int, Path]]:
    found = []
    for path in directory.glob(f"{prefix}*{suffix}"):
        number = path.name[len(prefix):-len(suffix)]
        if number.isdigit():
            found.append((int(number), path))
    return sorted(found)


class JournalWriter:
    """Appends framed records to one segment; ``commit`` writes the batch and fsyncs it."""

    def __init__(self, path: Path, *, fsync: bool = True):
        self.path = path
        self.fsync = fsync
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the writer
        # Framed records not yet written; the engine appends to it directly on the hot path.
        self.buffer: list[bytes] = []

    @property
    def pending(self) -> int:
        return len(self.buffer)

    def append(self, sequence: int, command) -> None:
        payload = encode_command(sequence, command)
        self.buffer.append(HEADER.pack(len(payload), zlib.crc32(payload)) + payload)

    def commit(self) -> None:
        if not self.buffer:
            return
        self._file.write(b"".join(self.buffer))
        if self.fsync:
            os.fsync(self._file.fileno())
        self.buffer.clear()

    def close(self) -> None:
        self.commit()
        self._file.close()


class Recovery:
    """What ``recover`` rebuilt: the core, the snapshot it started from, and the events the replay re-emitted."""

    def __init__(self, core: MatchingCore, snapshot_sequence: int, replayed: int, truncated_bytes: int,
                 events: list):
        self.core = core
        self.snapshot_sequence = snapshot_sequence
        self.replayed = replayed
        self.truncated_bytes = truncated_bytes
        self.events = events


def write_snapshot(directory: Path, core: MatchingCore) -> Path:
    state = core.to_state()
    body = json.dumps({"state": state, "sha256": core.state_hash()}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")).encode()
    final = directory / f"{_SNAPSHOT_PREFIX}{core.sequence:012d}.json"
    temporary = final.with_suffix(".tmp")
    with open(temporary, "wb") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    _fsync_directory(directory)
    return final


def load_snapshot(path: Path, core_class: type[MatchingCore] = MatchingCore) -> MatchingCore:
    document = json.loads(path.read_bytes())
    core = core_class.from_state(document["state"])
    if core.state_hash() != document["sha256"]:
        raise JournalCorrupt(f"snapshot {path.name} does not reproduce its recorded state hash")
    return core


def recover(directory: Path, *, repair: bool = True, core_class: type[MatchingCore] = MatchingCore) -> Recovery:
    """Newest snapshot plus every later journal record. With ``repair`` the torn tail of the last segment is cut.
    ``core_class`` is the core to rebuild (``ReferenceCore`` to run the pure-Python reference)."""
    directory = Path(directory)
    snapshots = _numbered(directory, _SNAPSHOT_PREFIX, ".json")
    core = load_snapshot(snapshots[-1][1], core_class) if snapshots else core_class()
    snapshot_sequence = core.sequence
    segments = _numbered(directory, _SEGMENT_PREFIX, ".log")
    events: list = []
    replayed = 0
    truncated = 0
    for index, (_, path) in enumerate(segments):
        payloads, good_end, torn = read_records(path)
        if torn:
            if index != len(segments) - 1:
                raise JournalCorrupt(f"bad record inside {path.name} at byte {good_end}, which is not the tail")
            truncated = path.stat().st_size - good_end
            if repair:
                with open(path, "r+b") as handle:
                    handle.truncate(good_end)
                    handle.flush()
                    os.fsync(handle.fileno())
        for payload in payloads:
            sequence, command = decode_command(payload)
            if sequence <= core.sequence:
                continue
            if sequence != core.sequence + 1:
                raise JournalCorrupt(f"gap in the journal: expected sequence {core.sequence + 1}, found {sequence}")
            outcome = core.apply(command)
            if not outcome.fresh or outcome.ack.sequence != sequence:
                raise JournalCorrupt(f"replay diverged at sequence {sequence}")
            events.extend(outcome.events)
            replayed += 1
    return Recovery(core, snapshot_sequence, replayed, truncated, events)


class JournaledEngine:
    """The matching core behind its journal. Single-threaded: one caller submits commands in order.

    ``submit`` returns the outcomes released by that call — in submission order, each only once the journal batch
    holding it (or holding anything before it) is on disk. ``execute`` is submit-and-flush for one command.
    """

    def __init__(self, directory: Path | str, *, batch_size: int = 256, fsync: bool = True,
                 core_class: type[MatchingCore] = MatchingCore):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # Held for the engine's lifetime; the kernel drops it when the process dies, so a crash never leaves the
        # directory locked.
        self._lock = open(self.directory / "LOCK", "a+b")  # noqa: SIM115
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock.close()
            raise JournalInUse(f"{self.directory} is held by another engine") from exc
        self.batch_size = batch_size
        self.fsync = fsync
        self.recovery = recover(self.directory, core_class=core_class)
        self.core = self.recovery.core
        segments = _numbered(self.directory, _SEGMENT_PREFIX, ".log")
        path = segments[-1][1] if segments else self._segment_path(self.core.sequence + 1)
        self._writer = JournalWriter(path, fsync=fsync)
        self._held: list[Outcome] = []

    def _segment_path(self, first_sequence: int) -> Path:
        return self.directory / f"{_SEGMENT_PREFIX}{first_sequence:012d}.log"

    def submit(self, command) -> list[Outcome]:
        outcome = self.core.apply(command)
        buffer = self._writer.buffer
        if outcome.fresh:
            payload = encode_command(outcome.ack.sequence, command)
            buffer.append(_pack_header(len(payload), crc32(payload)) + payload)
        elif not buffer and not self._held:
            # Nothing unwritten stands before this answer, so it may leave at once.
            return [outcome]
        self._held.append(outcome)
        if len(buffer) >= self.batch_size:
            return self.flush()
        return []

    def flush(self) -> list[Outcome]:
        self._writer.commit()
        released, self._held = self._held, []
        return released

    def submit_batch(self, packed):
        """Run a packed batch of orders and cancels (``native.pack``) through the core's batch path, journal its
        fresh commands and make them durable with one write and one ``fsync``: the batch is its own group commit.
        Returns the outcomes held before it (released now) and the ``native.Batch``, whose answers may leave once
        this returns. Needs a core with ``run`` (``NativeCore``)."""
        batch = self.core.run(packed)
        buffer = self._writer.buffer
        commands = packed.commands
        for index, sequence in batch.fresh_sequences():
            payload = encode_command(sequence, commands[index])
            buffer.append(_pack_header(len(payload), crc32(payload)) + payload)
        return self.flush(), batch

    def execute(self, command) -> Outcome:
        # Whenever submit releases anything, this command's outcome is the last of it.
        released = self.submit(command) or self.flush()
        return released[-1]

    def snapshot(self) -> Path:
        """Make everything durable, write the snapshot, and start a new segment after it."""
        self.flush()
        path = write_snapshot(self.directory, self.core)
        self._writer.close()
        self._writer = JournalWriter(self._segment_path(self.core.sequence + 1), fsync=self.fsync)
        return path

    def close(self) -> list[Outcome]:
        released = self.flush()
        self._writer.close()
        self._lock.close()
        return released

