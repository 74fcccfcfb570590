"""HJ 212 receiver core: an asyncio TCP server for many concurrent device connections.

    server = ReceiverServer(directory, sink)
    await server.start("0.0.0.0", 9212)
    result = await server.send_command(mn, "1012", {"SystemTime": "20240105103000"})
    await server.stop()

Framing splits the byte stream at CR LF and starts each packet at its last '##', so fragmented packets, several
packets in one read and garbage between packets all work; the codec then checks the declared length and CRC.
Devices are authenticated by MN + PW through an injectable `DeviceDirectory`; every packet, accepted or not, is
handed to an injectable `PacketSink` (which batches on its side). Answers: 9014 (data) or 9013 (notification) when
the Flag's answer bit is set; commands the platform sends are matched with the device's 9011/9012/9013 by QN.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

from ingot.monitoring.hj212.codec import (
    TOLERANCES, HJ212Error, Packet, Reassembler, decode, flag_for, format_qn, frame,
)

log = logging.getLogger(__name__)

# Deviations common enough in deployed data loggers that a receiver accepts them by default; each stays visible
# on the decoded packet's `tolerated`. Pass `tolerate=()` for a strict receiver.
DEFAULT_TOLERANCES = frozenset({"lowercase_crc", "free_form_mn", "long_password", "datatime_millis", "missing_qn_flag"})

# Commands the platform sends that a device answers with 9013 (notifications) rather than 9011 + 9012.
NOTIFICATION_COMMANDS = frozenset({"2012", "2022"})
# Commands a device sends that are notifications, answered with 9013; its other uploads get 9014.
DEVICE_NOTIFICATIONS = frozenset({"1013"})
ANSWER_CODES = frozenset({"9011", "9012", "9013", "9014"})


class DeviceDirectory(Protocol):
    async def authenticate(self, mn: str, password: str | None) -> Any | None:
        """The device's identity (e.g. a monitoring-point id) when MN and password match, else None."""


class PacketSink(Protocol):
    async def put(self, received: "ReceivedPacket") -> None:
        """Take one received packet; a sink batches and may make the caller wait (back-pressure)."""


@dataclass(frozen=True)
class ReceivedPacket:
    """A packet as received: decoded (`packet`) and from an authenticated device when `accepted`."""

    received_at: datetime
    peer: str
    text: str
    accepted: bool
    packet: Packet | None = None
    device: Any | None = None
    reason_code: str | None = None
    reason: str | None = None
    reason_zh: str | None = None

    @property
    def mn(self) -> str | None:
        return self.packet.mn if self.packet is not None else None


class InMemorySink:
    """Collects received packets in a list; for tests, the simulator and benchmarks."""

    def __init__(self) -> None:
        self.received: list[ReceivedPacket] = []
        self._changed = asyncio.Event()

    async def put(self, received: ReceivedPacket) -> None:
        self.received.append(received)
        self._changed.set()

    async def put_many(self, received: list[ReceivedPacket]) -> None:
        self.received.extend(received)
        self._changed.set()

    @property
    def accepted(self) -> list[ReceivedPacket]:
        return [r for r in self.received if r.accepted]

    async def wait_for(self, predicate: Callable[["InMemorySink"], bool], timeout: float = 10.0) -> None:
        async def wait() -> None:
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(wait(), timeout)


class StaticDirectory:
    """A DeviceDirectory over a dict MN → password (identity = the MN); for tests, demos and benchmarks."""

    def __init__(self, passwords: dict[str, str]):
        self.passwords = dict(passwords)

    async def authenticate(self, mn: str, password: str | None) -> Any | None:
        expected = self.passwords.get(mn)
        return mn if expected is not None and expected == password else None


class CommandFailed(Exception):
    """A command that did not complete; `result` holds what the device had answered by then (e.g. its 9011)."""

    def __init__(self, code: str, message_zh: str, message_en: str, result: "CommandResult | None" = None):
        super().__init__(message_en)
        self.code, self.message_zh, self.message_en = code, message_zh, message_en
        self.result = result


@dataclass
class CommandResult:
    qn: str
    cn: str
    qn_rtn: int | None = None      # 9011 QnRtn (table 7)
    exe_rtn: int | None = None     # 9012 ExeRtn (table 6)
    notified: bool = False         # 9013 received
    uploads: list[Packet] = field(default_factory=list)  # packets the device sent back with the same QN

    @property
    def succeeded(self) -> bool:
        return self.notified or (self.qn_rtn == 1 and self.exe_rtn == 1)


@dataclass
class ReceiverStats:
    connections_open: int = 0
    connections_total: int = 0
    connections_refused: int = 0
    closed_idle: int = 0
    closed_overflow: int = 0
    closed_auth: int = 0
    packets_accepted: int = 0
    packets_rejected: Counter = field(default_factory=Counter)  # by reason code
    garbage_bytes: int = 0
    answers_sent: int = 0
    commands_sent: int = 0

    def as_dict(self) -> dict:
        return {**{k: v for k, v in vars(self).items() if k != "packets_rejected"},
                "packets_rejected": dict(self.packets_rejected)}


class _Connection:
    __slots__ = ("peer", "writer", "last_seen", "credentials", "device", "mn", "password", "st", "version",
                 "reassembler", "auth_failures", "closing")

    def __init__(self, peer: str, writer: asyncio.StreamWriter, now: float):
        self.peer, self.writer, self.last_seen = peer, writer, now
        self.credentials: tuple[str, str] | None = None
        self.device: Any | None = None
        self.mn: str | None = None
        self.password: str | None = None
        self.st = "91"
        self.version = 1
        self.reassembler = Reassembler(max_pending=64)
        self.auth_failures = 0
        self.closing = False


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ReceiverServer:
    def __init__(self, directory: DeviceDirectory, sink: PacketSink, *, tolerate=DEFAULT_TOLERANCES,
                 idle_timeout: float = 300.0, max_connections: int = 10_000, max_buffer: int = 16_384,
                 max_auth_failures: int = 3, clock: Callable[[], datetime] = _utcnow):
        self.directory, self.sink = directory, sink
        self.tolerate = frozenset(tolerate)
        unknown = self.tolerate - TOLERANCES.keys()
        if unknown:
            raise ValueError(f"unknown tolerance option(s): {', '.join(sorted(unknown))}")
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_buffer = max_buffer
        self.max_auth_failures = max_auth_failures
        self.clock = clock
        self.stats = ReceiverStats()
        self.port: int | None = None
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[_Connection] = set()
        self._by_mn: dict[str, _Connection] = {}
        self._pending: dict[tuple[str, str], tuple[CommandResult, asyncio.Future]] = {}
        # (MN, CN) → QN of a pending request whose data the device uploads under QNs of its own (appendix C.20:
        # history uploads carry a new QN), so such uploads still reach the request's result.
        self._awaiting_uploads: dict[tuple[str, str], str] = {}
        self._progress: dict[tuple[str, str], Callable[[CommandResult], None]] = {}
        self._sweeper: asyncio.Task | None = None
        self._handlers: set[asyncio.Task] = set()

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> "ReceiverServer":
        self._server = await asyncio.start_server(self._serve, host, port, limit=self.max_buffer * 2, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]
        self._sweeper = asyncio.create_task(self._sweep_idle(), name="hj212-idle-sweeper")
        return self

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.closing = True
            connection.writer.close()
        if self._handlers:
            # closed writers end their handlers' reads; wait so no handler outlives the server
            await asyncio.wait(list(self._handlers), timeout=5.0)
        if self._server is not None:
            await self._server.wait_closed()
        for result, future in self._pending.values():
            if not future.done():
                future.set_exception(CommandFailed("receiver_stopped", "接收服务已停止", "the receiver stopped"))
        self._pending.clear()

    async def serve_forever(self) -> None:
        assert self._server is not None, "start() first"
        await self._server.serve_forever()

    @property
    def connected_mns(self) -> list[str]:
        return sorted(self._by_mn)

    async def _sweep_idle(self) -> None:
        loop = asyncio.get_running_loop()
        period = max(0.05, min(self.idle_timeout / 4, 5.0))
        while True:
            await asyncio.sleep(period)
            deadline = loop.time() - self.idle_timeout
            for connection in list(self._connections):
                if connection.last_seen < deadline and not connection.closing:
                    self.stats.closed_idle += 1
                    connection.closing = True
                    connection.writer.close()

    # --- one connection -----------------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        if len(self._connections) >= self.max_connections:
            self.stats.connections_refused += 1
            writer.close()
            return
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        connection = _Connection(peer, writer, loop.time())
        handler = asyncio.current_task()
        self._handlers.add(handler)
        self._connections.add(connection)
        self.stats.connections_open += 1
        self.stats.connections_total += 1
        buffer = bytearray()
        try:
            while not connection.closing:
                try:
                    data = await reader.read(65536)
                except (ConnectionError, OSError):
                    break
                if not data:
                    break
                connection.last_seen = loop.time()
                buffer += data
                await self._drain_packets(connection, buffer)
                if len(buffer) > self.max_buffer:
                    # No CR LF within the limit: not a packet anyone can finish; drop the device.
                    self.stats.closed_overflow += 1
                    self.stats.garbage_bytes += len(buffer)
                    break
        except Exception:  # noqa: BLE001 - one connection's failure (e.g. a sink error) never reaches the others
            log.exception("hj212 receiver: connection %s failed", peer)
        finally:
            self._handlers.discard(handler)
            self._connections.discard(connection)
            self.stats.connections_open -= 1
            if connection.mn is not None and self._by_mn.get(connection.mn) is connection:
                del self._by_mn[connection.mn]
            writer.close()

    async def _drain_packets(self, connection: _Connection, buffer: bytearray) -> None:
        # Every complete packet of this read is handled in turn; their answers go out in one write and the
        # received packets to the sink in one call, so a busy device costs one system call and one queue
        # operation per read rather than per packet. Answers are sent before the sink may apply back-pressure.
        answers: list[bytes] = []
        received: list[ReceivedPacket] = []
        received_at = None
        try:
            while True:
                end = buffer.find(b"\r\n")
                if end < 0:
                    start = buffer.rfind(b"##")
                    # Keep only what may still become a packet; a lone trailing '#' may be half of '##'.
                    keep_from = start if start >= 0 else (len(buffer) - 1 if buffer.endswith(b"#") else len(buffer))
                    if keep_from > 0:
                        self.stats.garbage_bytes += keep_from
                        del buffer[:keep_from]
                    return
                start = buffer.rfind(b"##", 0, end)
                if start < 0:
                    self.stats.garbage_bytes += end + 2
                    del buffer[:end + 2]
                    continue
                self.stats.garbage_bytes += start
                raw = bytes(buffer[start:end])
                del buffer[:end + 2]
                if received_at is None:
                    received_at = self.clock()  # the bytes of one read arrived together
                await self._handle(connection, raw, received_at, answers, received)
                if connection.closing:
                    return
        finally:
            if answers:
                await self._write(connection, b"".join(answers))
                self.stats.answers_sent += len(answers)
            if received:
                put_many = getattr(self.sink, "put_many", None)
                if put_many is not None:
                    await put_many(received)
                else:
                    for item in received:
                        await self.sink.put(item)

    async def _handle(self, connection: _Connection, raw: bytes, received_at: datetime, answers: list[bytes],
                      received: list[ReceivedPacket]) -> None:
        text = raw.decode("utf-8", "replace")
        try:
            packet = decode(raw, self.tolerate)
        except HJ212Error as error:
            self.stats.packets_rejected[error.code] += 1
            received.append(ReceivedPacket(received_at, connection.peer, text, False, reason_code=error.code,
                                           reason=error.message_en, reason_zh=error.message_zh))
            return
        if packet.mn != connection.mn or packet.pw != connection.password:
            device = await self.directory.authenticate(packet.mn, packet.pw)
            if device is None:
                connection.auth_failures += 1
                self.stats.packets_rejected["auth_failed"] += 1
                received.append(ReceivedPacket(
                    received_at, connection.peer, text, False, packet, reason_code="auth_failed",
                    reason=f"unknown MN or wrong password for MN {packet.mn}",
                    reason_zh=f"MN {packet.mn} 未登记或密码错误"))
                if connection.auth_failures >= self.max_auth_failures:
                    self.stats.closed_auth += 1
                    connection.closing = True
                return
            if connection.mn is not None and connection.mn != packet.mn and self._by_mn.get(connection.mn) is connection:
                del self._by_mn[connection.mn]
            connection.credentials, connection.device = (packet.mn, packet.pw), device
            connection.mn, connection.password = packet.mn, packet.pw
            self._by_mn[packet.mn] = connection
        connection.st, connection.version = packet.st, packet.version
        self.stats.packets_accepted += 1
        if packet.flag is not None and packet.flag & 1:  # the answer bit: needs_answer
            answers.append(self._answer_bytes(packet))
        if self._pending and (packet.cn in ANSWER_CODES or (packet.qn is not None and (packet.mn, packet.qn) in self._pending)
                              or (packet.mn, packet.cn) in self._awaiting_uploads):
            self._route_answer(packet)
        whole = packet if packet.pnum is None else connection.reassembler.add(packet)
        if whole is not None:
            received.append(ReceivedPacket(received_at, connection.peer, text, True, whole, connection.device))

    @staticmethod
    def _answer_bytes(packet: Packet) -> bytes:
        cn = "9013" if packet.cn in DEVICE_NOTIFICATIONS else "9014"
        qn = f"QN={packet.qn};" if packet.qn is not None else ""
        return frame(f"{qn}ST=91;CN={cn};PW={packet.pw};MN={packet.mn};Flag={flag_for(version=packet.version)};CP=&&&&")

    async def _answer(self, connection: _Connection, packet: Packet) -> None:
        await self._write(connection, self._answer_bytes(packet))
        self.stats.answers_sent += 1

    async def _write(self, connection: _Connection, data: bytes) -> None:
        writer = connection.writer
        if writer.is_closing():
            return
        writer.write(data)
        # Drain only when the device stops reading, so a slow reader holds up only its own connection.
        if writer.transport.get_write_buffer_size() > 65536:
            await writer.drain()

    # --- commands the platform sends ----------------------------------------------------------------------------

    def _route_answer(self, packet: Packet) -> None:
        key = (packet.mn, packet.qn or "")
        pending = self._pending.get(key)
        if pending is None and packet.cn not in ANSWER_CODES:
            qn = self._awaiting_uploads.get((packet.mn, packet.cn))
            key = (packet.mn, qn or "")
            pending = self._pending.get(key)
            if pending is not None and pending[0].qn_rtn != 1:
                return  # an upload under its own QN counts only once the device has accepted the request
        if pending is None:
            return
        result, future = pending
        if packet.cn == "9011":
            result.qn_rtn = _int_param(packet, "QnRtn")
            progress = self._progress.get(key)
            if progress is not None and result.qn_rtn == 1:
                progress(result)
            if result.qn_rtn != 1:
                _settle(future, result)
        elif packet.cn == "9012":
            result.exe_rtn = _int_param(packet, "ExeRtn")
            _settle(future, result)
        elif packet.cn == "9013":
            result.notified = True
            _settle(future, result)
        elif packet.cn != "9014":
            result.uploads.append(packet)

    def _new_qn(self) -> str:
        # QN identifies one exchange: the time to the millisecond, made unique by advancing past any QN in use.
        moment = self.clock()
        qn = format_qn(moment)
        while any(key[1] == qn for key in self._pending):
            qn = str(int(qn) + 1)
        return qn

    async def send_command(self, mn: str, cn: str, params: dict[str, str] | None = None, *,
                           timeout: float = 30.0,
                           on_progress: Callable[[CommandResult], None] | None = None) -> CommandResult:
        """Send a request (e.g. 1012 time calibration, 1062 real-time interval) to a connected device and wait
        for its 9011 request answer and 9012 execution result (or 9013 for notifications).

        `on_progress(result)` is called once the request is written (its QN is then known) and again when the
        device accepts it (9011 QnRtn=1), so a caller can record each step before the command completes. On a time-out
        the CommandFailed carries the partial result."""
        connection = self._by_mn.get(mn)
        if connection is None or connection.closing:
            raise CommandFailed("device_not_connected", f"设备 {mn} 未连接", f"device {mn} is not connected")
        if len(cn) != 4 or not cn.isdigit():
            raise CommandFailed("cn_format", f"CN 须为 4 位数字：{cn!r}", f"CN must be 4 digits: {cn!r}")
        qn = self._new_qn()
        password = connection.credentials[1] if connection.credentials else ""
        cp = ";".join(f"{key}={value}" for key, value in (params or {}).items())
        segment = (f"QN={qn};ST={connection.st};CN={cn};PW={password};MN={mn};"
                   f"Flag={flag_for(version=max(connection.version, 1), answer=True)};CP=&&{cp}&&")
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        result = CommandResult(qn, cn)
        self._pending[(mn, qn)] = (result, future)
        if on_progress is not None:
            self._progress[(mn, qn)] = on_progress
        if cn not in NOTIFICATION_COMMANDS:
            self._awaiting_uploads[(mn, cn)] = qn
        try:
            await self._write(connection, frame(segment))
            self.stats.commands_sent += 1
            if on_progress is not None:
                on_progress(result)
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise CommandFailed("command_timeout", f"设备 {mn} 在 {timeout} 秒内未完成命令 {cn}",
                                f"device {mn} did not complete command {cn} within {timeout} s", result) from None
        finally:
            self._pending.pop((mn, qn), None)
            self._progress.pop((mn, qn), None)
            if self._awaiting_uploads.get((mn, cn)) == qn:
                del self._awaiting_uploads[(mn, cn)]


def _int_param(packet: Packet, name: str) -> int | None:
    value = packet.params.get(name)
    return int(value) if value is not None and value.isdigit() and value.isascii() else None


def _settle(future: asyncio.Future, result: CommandResult) -> None:
    if not future.done():
        future.set_result(result)
