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
import gc
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Coroutine, NamedTuple, Protocol, TypeVar

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
# The Flag of our answers by the packet's version (flag_for's result, looked up once per packet instead).
_ANSWER_FLAG = {version: flag_for(version=version) for version in (0, 1, 2)}
_UNKNOWN = object()  # "not yet asked the directory", as opposed to its None (refused)


T = TypeVar("T")


def run_receiver_process(main: Coroutine[Any, Any, T]) -> T:
    """Run a receiver process's main coroutine (`ingot monitor listen`, the ingest bench's workers).

    Two process-wide settings that the ingest path needs and a library must not impose on its host:
    - the event loop is uvloop's when it is installed (a dependency on Linux; INGOT_ASYNCIO_LOOP=asyncio keeps
      the standard loop): its C transports cost a fraction of asyncio's per read and write, which is most of what
      a device connection costs beyond decoding;
    - the garbage collector runs less often, with what exists at start frozen out of its scans: every packet
      allocates some twenty tracked objects (its pollutants and their values) that live until the sink has written
      them, so at the default thresholds the collector ran every few dozen packets and rescanned all the queued
      ones each time (about 12 µs of the receiver's 26 µs per packet in a profile). Decoded packets hold no
      reference cycles; what garbage the loop's futures leave is still collected, only in larger steps.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 50)
    if os.environ.get("INGOT_ASYNCIO_LOOP", "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)


class DeviceDirectory(Protocol):
    async def authenticate(self, mn: str, password: str | None) -> Any | None:
        """The device's identity (e.g. a monitoring-point id) when MN and password match, else None."""


class PacketSink(Protocol):
    async def put(self, received: "ReceivedPacket") -> None:
        """Take one received packet; a sink batches and may make the caller wait (back-pressure)."""

    # Optional, and what the receiver uses when a sink has them: `put_nowait_many(items)` takes a list at once and
    # says whether there is still room; when not, the receiver stops reading from that connection until
    # `await wait_for_room()` returns. Without them, it awaits `put_many(items)` (or `put` per item).


class ReceivedPacket(NamedTuple):
    """A packet as received: decoded (`packet`) and from an authenticated device when `accepted`. (A named tuple:
    immutable like the frozen dataclass it was, and built several times faster, once per packet.)"""

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
        self.put_nowait_many(received)

    def put_nowait_many(self, received: list[ReceivedPacket]) -> bool:
        self.received.extend(received)
        self._changed.set()
        return True

    async def wait_for_room(self) -> None:
        return None

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
    __slots__ = ("peer", "transport", "last_seen", "credentials", "device", "mn", "password", "st", "version",
                 "reassembler", "auth_failures", "closing", "buffer", "busy", "holds")

    def __init__(self, peer: str, transport: asyncio.Transport, now: float):
        self.peer, self.transport, self.last_seen = peer, transport, now
        self.credentials: tuple[str, str] | None = None
        self.device: Any | None = None
        self.mn: str | None = None
        self.password: str | None = None
        self.st = "91"
        self.version = 1
        self.reassembler = Reassembler(max_pending=64)
        self.auth_failures = 0
        self.closing = False
        self.buffer = bytearray()
        self.busy = False   # an awaited step (authentication, a full sink) is under way; it handles what follows
        self.holds = 0      # reasons reading is paused: an awaited step, the device not reading its answers


class _DeviceProtocol(asyncio.Protocol):
    """One device connection: bytes go straight from the transport to the server's framing, with no stream reader
    and no task per connection (an awaited step runs as a task only when one is needed)."""

    __slots__ = ("server", "connection")

    def __init__(self, server: "ReceiverServer"):
        self.server = server
        self.connection: _Connection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connection = self.server._opened(transport)

    def data_received(self, data: bytes) -> None:
        if self.connection is not None:
            self.server._received(self.connection, data)

    def eof_received(self) -> bool:
        return False  # the device hung up: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connection is not None:
            self.server._closed(self.connection)

    def pause_writing(self) -> None:
        # The device does not read its answers (64 KiB wait in the transport): stop reading from it, so a slow
        # reader holds up only its own connection.
        if self.connection is not None:
            self.server._hold(self.connection)

    def resume_writing(self) -> None:
        if self.connection is not None:
            self.server._release(self.connection)


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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: set[_Connection] = set()
        self._by_mn: dict[str, _Connection] = {}
        self._pending: dict[tuple[str, str], tuple[CommandResult, asyncio.Future]] = {}
        # (MN, CN) → QN of a pending request whose data the device uploads under QNs of its own (appendix C.20:
        # history uploads carry a new QN), so such uploads still reach the request's result.
        self._awaiting_uploads: dict[tuple[str, str], str] = {}
        self._progress: dict[tuple[str, str], Callable[[CommandResult], None]] = {}
        self._sweeper: asyncio.Task | None = None
        self._steps: set[asyncio.Task] = set()
        self._offer = getattr(sink, "put_nowait_many", None)
        self._all_closed: asyncio.Event | None = None  # set by the last connection to close while stop() waits

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, reuse_port: bool = False) -> "ReceiverServer":
        """Listen on (host, port). `reuse_port` sets SO_REUSEPORT, so several receiver processes can share one
        port and the kernel spreads new connections among them."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(lambda: _DeviceProtocol(self), host, port, backlog=4096,
                                                      reuse_port=reuse_port or None)
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
            connection.transport.close()
        if self._steps:
            # awaited steps of closed connections end quickly; wait so none outlives the server
            await asyncio.wait(list(self._steps), timeout=5.0)
        if self._connections:
            # each transport reports its connection lost (_closed) once it has closed; wait for the last of them
            self._all_closed = asyncio.Event()
            try:
                await asyncio.wait_for(self._all_closed.wait(), timeout=5.0)
            except asyncio.TimeoutError:
                log.warning("hj212 receiver: %d connections did not report closing", len(self._connections))
            self._all_closed = None
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
                    connection.transport.close()

    # --- one connection -----------------------------------------------------------------------------------------

    def _opened(self, transport: asyncio.BaseTransport) -> _Connection | None:
        if len(self._connections) >= self.max_connections:
            self.stats.connections_refused += 1
            transport.close()
            return None
        peername = transport.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        connection = _Connection(peer, transport, self._loop.time())
        self._connections.add(connection)
        self.stats.connections_open += 1
        self.stats.connections_total += 1
        return connection

    def _closed(self, connection: _Connection) -> None:
        connection.closing = True
        if connection in self._connections:
            self._connections.discard(connection)
            self.stats.connections_open -= 1
            if not self._connections and self._all_closed is not None:
                self._all_closed.set()
        if connection.mn is not None and self._by_mn.get(connection.mn) is connection:
            del self._by_mn[connection.mn]

    def _hold(self, connection: _Connection) -> None:
        connection.holds += 1
        if connection.holds == 1 and not connection.transport.is_closing():
            connection.transport.pause_reading()

    def _release(self, connection: _Connection) -> None:
        connection.holds -= 1
        if connection.holds == 0 and not connection.transport.is_closing():
            connection.transport.resume_reading()

    def _received(self, connection: _Connection, data: bytes) -> None:
        connection.last_seen = self._loop.time()
        connection.buffer += data
        if connection.busy or connection.closing:
            return  # the awaited step under way carries on with these bytes when it is done
        try:
            self._drain(connection)
        except Exception:  # noqa: BLE001 - one connection's failure (e.g. a sink error) never reaches the others
            log.exception("hj212 receiver: connection %s failed", connection.peer)
            connection.closing = True
            connection.transport.close()

    def _drain(self, connection: _Connection) -> None:
        # Every complete packet of the buffer is handled in turn; their answers go out in one write and the
        # received packets to the sink in one call, so a busy device costs one system call and one queue
        # operation per read rather than per packet. Answers are written before the sink may apply back-pressure.
        # When a packet needs an awaited step (authenticating a new MN or password), the packets before it are
        # handed over first and a task takes over from it, with reading paused, so order is kept.
        buffer = connection.buffer
        answers: list[bytes] = []
        received: list[ReceivedPacket] = []
        received_at = None
        needs_auth = None
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
                    break
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
                packet = self._handle(connection, raw, received_at, answers, received)
                if packet is not None:
                    needs_auth = (raw, received_at, packet)
                    break
                if connection.closing:
                    break
        finally:
            waiting = self._hand_over(connection, answers, received)
        if needs_auth is not None or waiting is not None:
            connection.busy = True
            self._hold(connection)
            step = self._loop.create_task(self._awaited_step(connection, waiting, needs_auth))
            self._steps.add(step)
            step.add_done_callback(self._steps.discard)
            return
        self._check_limits(connection)

    def _check_limits(self, connection: _Connection) -> None:
        if not connection.closing and len(connection.buffer) > self.max_buffer:
            # No CR LF within the limit: not a packet anyone can finish; drop the device.
            self.stats.closed_overflow += 1
            self.stats.garbage_bytes += len(connection.buffer)
            connection.closing = True
        if connection.closing:
            connection.buffer.clear()
            connection.transport.close()  # after what is already written (the answers) has gone out

    def _hand_over(self, connection: _Connection, answers: list[bytes], received: list[ReceivedPacket]
                   ) -> Awaitable | None:
        """Write the answers and give the received packets to the sink; what to await before reading on, if any."""
        if answers:
            self._write_now(connection, b"".join(answers))
            self.stats.answers_sent += len(answers)
        if not received:
            return None
        if self._offer is not None:
            return None if self._offer(received) else self.sink.wait_for_room()
        put_many = getattr(self.sink, "put_many", None)
        if put_many is not None:
            return put_many(received)
        return self._put_each(received)

    async def _put_each(self, received: list[ReceivedPacket]) -> None:
        for item in received:
            await self.sink.put(item)

    async def _awaited_step(self, connection: _Connection, waiting: Awaitable | None, needs_auth) -> None:
        try:
            while True:
                if waiting is not None:
                    await waiting
                    waiting = None
                if needs_auth is not None:
                    raw, received_at, packet = needs_auth
                    needs_auth = None
                    device = await self.directory.authenticate(packet.mn, packet.pw)
                    answers: list[bytes] = []
                    received: list[ReceivedPacket] = []
                    self._handle(connection, raw, received_at, answers, received, packet, device)
                    waiting = self._hand_over(connection, answers, received)
                    if waiting is not None:
                        continue
                if connection.closing:
                    break
                connection.busy = False
                self._drain(connection)  # what arrived meanwhile; it may start a step of its own
                return
        except Exception:  # noqa: BLE001 - one connection's failure (e.g. a sink error) never reaches the others
            log.exception("hj212 receiver: connection %s failed", connection.peer)
            connection.closing = True
        finally:
            if connection.closing:
                connection.busy = False
                self._check_limits(connection)
            self._release(connection)

    def _handle(self, connection: _Connection, raw: bytes, received_at: datetime, answers: list[bytes],
                received: list[ReceivedPacket], packet: Packet | None = None, device: Any = _UNKNOWN) -> Packet | None:
        """Handle one framed packet; returns the decoded packet, untouched, when its MN and password must first
        be authenticated (call again with `packet` and the directory's `device`)."""
        if packet is None:
            try:
                packet = decode(raw, self.tolerate)
            except HJ212Error as error:
                self.stats.packets_rejected[error.code] += 1
                received.append(ReceivedPacket(received_at, connection.peer, raw.decode("utf-8", "replace"), False,
                                               reason_code=error.code, reason=error.message_en,
                                               reason_zh=error.message_zh))
                return None
        if packet.mn != connection.mn or packet.pw != connection.password:
            if device is _UNKNOWN:
                return packet
            if device is None:
                connection.auth_failures += 1
                self.stats.packets_rejected["auth_failed"] += 1
                received.append(ReceivedPacket(
                    received_at, connection.peer, raw.decode("utf-8", "replace"), False, packet,
                    reason_code="auth_failed", reason=f"unknown MN or wrong password for MN {packet.mn}",
                    reason_zh=f"MN {packet.mn} 未登记或密码错误"))
                if connection.auth_failures >= self.max_auth_failures:
                    self.stats.closed_auth += 1
                    connection.closing = True
                return None
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
            received.append(ReceivedPacket(received_at, connection.peer, raw.decode("utf-8", "replace"), True, whole,
                                           connection.device))
        return None

    @staticmethod
    def _answer_bytes(packet: Packet) -> bytes:
        cn = "9013" if packet.cn in DEVICE_NOTIFICATIONS else "9014"
        qn = f"QN={packet.qn};" if packet.qn is not None else ""
        flag = _ANSWER_FLAG.get(packet.version)
        if flag is None:
            flag = flag_for(version=packet.version)
        return frame(f"{qn}ST=91;CN={cn};PW={packet.pw};MN={packet.mn};Flag={flag};CP=&&&&")

    def _write_now(self, connection: _Connection, data: bytes) -> None:
        # The transport queues what the socket does not take at once; past its high-water mark it calls
        # pause_writing and we stop reading from that device until it catches up.
        transport = connection.transport
        if not transport.is_closing():
            transport.write(data)

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
            self._write_now(connection, frame(segment))
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
