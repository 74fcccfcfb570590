"""Receiver over loopback: framing, authentication, answers, commands, limits; and the simulator against it."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from ingot.monitoring.hj212 import decode, frame
from ingot.monitoring.receiver import (
    CommandFailed, InMemorySink, ReceiverServer, StaticDirectory,
)
from ingot.monitoring.simulator import DeviceSpec, VirtualDevice, run_fleet

MN = "010000A8900016F000169DC0"
LOOP_RUNNERS = {"asyncio": asyncio.run}
try:
    import uvloop
except ImportError:  # uvloop is a Linux dependency; elsewhere the receiver runs on the standard loop only
    pass
else:
    LOOP_RUNNERS["uvloop"] = uvloop.run
_run_loop = asyncio.run


@pytest.fixture(autouse=True, params=sorted(LOOP_RUNNERS))
def loop_runner(request):
    """The scenarios run on both event loops: `ingot monitor listen` runs on uvloop (run_receiver_process), and the
    receiver must behave the same on the standard loop."""
    global _run_loop
    _run_loop = LOOP_RUNNERS[request.param]
    yield request.param
    _run_loop = asyncio.run


def data_packet(minute: int, *, mn: str = MN, password: str = "123456", flag: int = 5) -> bytes:
    return frame(f"QN=2024010510{minute:02d}00001;ST=31;CN=2051;PW={password};MN={mn};Flag={flag};"
                 f"CP=&&DataTime=2024010510{minute:02d}00;a21026-Avg={minute}.5,a21026-Flag=N&&")


def run(scenario, *, directory=None, sink_type=InMemorySink, **options):
    async def main():
        sink = sink_type()
        server = ReceiverServer(directory or StaticDirectory({MN: "123456"}), sink, **options)
        await server.start("127.0.0.1", 0)
        try:
            return await scenario(server, sink)
        finally:
            await server.stop()
    return _run_loop(main())


async def read_answers(reader, count: int) -> list[bytes]:
    return [await asyncio.wait_for(reader.readuntil(b"\r\n"), 10) for _ in range(count)]


def test_fragmented_concatenated_and_garbage_input():
    async def scenario(server, sink):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        stream = b"noise\r\n" + data_packet(0) + data_packet(1) + b"\x00\xffjunk##" + data_packet(2) + b"#"
        for offset in range(0, len(stream), 5):
            writer.write(stream[offset:offset + 5])
            await writer.drain()
        answers = await read_answers(reader, 3)
        await sink.wait_for(lambda s: len(s.accepted) == 3)
        writer.close()
        return answers, sink, server.stats

    answers, sink, stats = run(scenario)
    assert [decode(a).cn for a in answers] == ["9014"] * 3
    assert [decode(a).qn for a in answers] == ["20240105100000001", "20240105100100001", "20240105100200001"]
    assert [r.packet.pollutants["a21026"].values["Avg"] for r in sink.accepted] == [0.5, 1.5, 2.5]
    assert all(r.device == MN and r.received_at.tzinfo is not None for r in sink.accepted)
    assert stats.packets_accepted == 3 and stats.garbage_bytes >= len(b"noise\r\n\x00\xffjunk")


def test_no_answer_without_the_answer_bit_and_bad_packets_are_counted():
    async def scenario(server, sink):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        corrupt = bytearray(data_packet(1))
        corrupt[-4] = ord("0") if corrupt[-4] != ord("0") else ord("1")
        writer.write(data_packet(0, flag=4) + bytes(corrupt) + data_packet(2))
        answers = await read_answers(reader, 1)
        await sink.wait_for(lambda s: len(s.received) == 3)
        writer.close()
        return answers, sink, server.stats

    answers, sink, stats = run(scenario)
    assert decode(answers[0]).qn == "20240105100200001"  # only the packet asking for an answer got one
    rejected = [r for r in sink.received if not r.accepted]
    assert [r.reason_code for r in rejected] == ["crc_mismatch"] and rejected[0].reason_zh
    assert stats.packets_rejected == {"crc_mismatch": 1}


def test_wrong_password_is_rejected_and_the_device_dropped_after_repeated_failures():
    async def scenario(server, sink):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"".join(data_packet(i, password="000000") for i in range(3)))
        closed = await asyncio.wait_for(reader.read(), 10)
        return closed, sink, server.stats

    closed, sink, stats = run(scenario, max_auth_failures=3)
    assert closed == b""  # no answer, then the connection is closed
    assert [r.reason_code for r in sink.received] == ["auth_failed"] * 3 and not sink.accepted
    assert stats.packets_rejected["auth_failed"] == 3 and stats.closed_auth == 1


def test_command_round_trip_with_a_simulated_device():
    spec = DeviceSpec(mn=MN)

    async def scenario(server, sink):
        device = VirtualDevice(spec, __import__("random").Random(1), datetime(2024, 1, 5, tzinfo=timezone.utc))
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(data_packet(0))
        await read_answers(reader, 1)

        async def logger_side():
            while True:
                line = await reader.readuntil(b"\r\n")
                writer.write(b"".join(device.answers_to(line)))

        side = asyncio.create_task(logger_side())
        calibrated = await server.send_command(MN, "1012", {"SystemTime": "20240105120000"}, timeout=10)
        asked = await server.send_command(MN, "1011", timeout=10)
        refused = await server.send_command(MN, "1062", {"RtdInterval": "5"}, timeout=10)
        stopped = await server.send_command(MN, "2012", timeout=10)
        with pytest.raises(CommandFailed) as missing:
            await server.send_command("FFFFFFFFFFFFFFFFFFFFFFFF", "1012", timeout=1)
        side.cancel()
        writer.close()
        return calibrated, asked, refused, stopped, missing.value, device

    calibrated, asked, refused, stopped, missing, device = run(scenario)
    assert calibrated.succeeded and (calibrated.qn_rtn, calibrated.exe_rtn) == (1, 1)
    assert device.clock == datetime(2024, 1, 5, 4, 0, tzinfo=timezone.utc)
    assert asked.succeeded and asked.uploads[0].params["SystemTime"] == "20240105120000"
    assert not refused.succeeded and refused.exe_rtn == 3
    assert stopped.notified and stopped.succeeded
    assert missing.code == "device_not_connected"


def test_history_uploads_under_their_own_qn_and_progress_steps_reach_the_command():
    """Appendix C.20: history packets come under QNs of the device's own; they belong to the request once accepted."""
    spec = DeviceSpec(mn=MN, pollutants=("a21026",), refuses=("1062",))

    async def scenario(server, sink):
        device = VirtualDevice(spec, __import__("random").Random(1), datetime(2024, 1, 5, 2, 0, tzinfo=timezone.utc))
        for _ in range(5):
            device.packets_for_tick()  # five minutes of history: 10:00 to 10:04 Beijing time
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(data_packet(0))
        await read_answers(reader, 1)

        async def logger_side():
            while True:
                line = await reader.readuntil(b"\r\n")
                writer.write(b"".join(device.answers_to(line)))

        side = asyncio.create_task(logger_side())
        steps = []
        history = await server.send_command(MN, "2051", {"BeginTime": "20240105100100", "EndTime": "20240105100300"},
                                            timeout=10, on_progress=lambda r: steps.append((r.qn, r.qn_rtn)))
        empty = await server.send_command(MN, "2051", {"BeginTime": "20230105100100", "EndTime": "20230105100300"},
                                          timeout=10)
        refused = await server.send_command(MN, "1062", {"RtdInterval": "60"}, timeout=10)
        minutes = await server.send_command(MN, "1064", {"MinInterval": "10"}, timeout=10)
        asked = await server.send_command(MN, "1063", timeout=10)
        side.cancel()
        writer.close()
        return history, steps, empty, refused, minutes, asked

    history, steps, empty, refused, minutes, asked = run(scenario)
    assert history.succeeded and [p.data_time.strftime("%H%M") for p in history.uploads] == ["1001", "1002", "1003"]
    assert all(p.qn != history.qn for p in history.uploads)
    assert steps == [(history.qn, None), (history.qn, 1)]
    assert (empty.qn_rtn, empty.exe_rtn, empty.uploads) == (1, 100, [])
    assert (refused.qn_rtn, refused.exe_rtn, refused.succeeded) == (2, None, False)
    assert minutes.succeeded and asked.uploads[0].params == {"MinInterval": "10"}


def test_command_times_out_when_the_device_stays_silent():
    async def scenario(server, sink):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(data_packet(0))
        await read_answers(reader, 1)
        with pytest.raises(CommandFailed) as silent:
            await server.send_command(MN, "1012", {"SystemTime": "20240105120000"}, timeout=0.2)
        request = decode((await read_answers(reader, 1))[0])
        writer.close()
        return silent.value, request

    silent, request = run(scenario)
    assert silent.code == "command_timeout"
    assert (request.cn, request.mn, request.needs_answer, request.params) == ("1012", MN, True, {"SystemTime": "20240105120000"})


def test_limits_idle_timeout_buffer_and_connection_count():
    async def scenario(server, sink):
        idle_reader, _idle = await asyncio.open_connection("127.0.0.1", server.port)
        flood_reader, flood = await asyncio.open_connection("127.0.0.1", server.port)
        third_reader, _third = await asyncio.open_connection("127.0.0.1", server.port)
        refused = await asyncio.wait_for(third_reader.read(), 10)
        flood.write(b"##" + b"x" * 5000)
        flooded = await asyncio.wait_for(flood_reader.read(), 10)
        idled = await asyncio.wait_for(idle_reader.read(), 10)
        return refused, flooded, idled, server.stats

    refused, flooded, idled, stats = run(scenario, max_connections=2, max_buffer=1024, idle_timeout=0.3)
    assert refused == flooded == idled == b""
    assert stats.connections_refused == 1 and stats.closed_overflow == 1 and stats.closed_idle >= 1


def test_split_packets_reach_the_sink_whole_and_each_part_is_answered():
    head = f"QN=20240105103000001;ST=31;CN=2061;PW=123456;MN={MN};Flag=7;PNUM=2;PNO="

    async def scenario(server, sink):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(frame(head + "1;CP=&&DataTime=20240105100000;a21026-Avg=1&&")
                     + frame(head + "2;CP=&&DataTime=20240105100000;a34013-Avg=2&&"))
        answers = await read_answers(reader, 2)
        await sink.wait_for(lambda s: len(s.accepted) == 1)
        writer.close()
        return answers, sink

    answers, sink = run(scenario)
    assert len(answers) == 2
    assert set(sink.accepted[0].packet.pollutants) == {"a21026", "a34013"}


def test_three_hundred_concurrent_devices():
    passwords = {f"88SIM{index:019d}": "123456" for index in range(300)}

    async def device(port: int, mn: str) -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"".join(data_packet(i, mn=mn) for i in range(3)))
        answers = await read_answers(reader, 3)
        writer.close()
        return answers

    async def scenario(server, sink):
        results = await asyncio.gather(*(device(server.port, mn) for mn in passwords))
        await sink.wait_for(lambda s: len(s.accepted) == 900)
        return results, server.stats

    results, stats = run(scenario, directory=StaticDirectory(passwords))
    assert sum(len(r) for r in results) == 900 and stats.connections_total == 300 and stats.packets_accepted == 900


def test_simulated_fleet_into_the_memory_sink():
    specs = [DeviceSpec(mn=f"88SIM{index:019d}", exceedance_rate=0.5, malformed_rate=0.2, split_hourly=True)
             for index in range(4)]

    async def scenario(server, sink):
        report = await run_fleet("127.0.0.1", server.port, specs, seconds=60, interval=0, max_ticks=61, seed=7,
                                 start=datetime(2024, 1, 5, 1, 59, tzinfo=timezone.utc))
        # every hourly packet arrives in two answered parts and reaches the sink once, whole
        await sink.wait_for(lambda s: sum(2 if r.packet.cn == "2061" else 1 for r in s.accepted) == report.answers)
        return report, sink, server.stats

    report, sink, stats = run(scenario, directory=StaticDirectory({s.mn: s.password for s in specs}))
    kinds = {r.packet.cn for r in sink.accepted}
    assert kinds >= {"2011", "2051", "2061"} and report.malformed_sent > 0
    assert stats.packets_rejected and report.answers == report.packets_sent - report.malformed_sent
    hourly = [r.packet for r in sink.accepted if r.packet.cn == "2061"]
    assert hourly and all(p.pnum is None and "a21026" in p.pollutants and "a01014" in p.pollutants for p in hourly)
    so2 = [r.packet.pollutants["a21026"].values["Rtd"] for r in sink.accepted if r.packet.cn == "2011"]
    assert min(so2) > 0 and max(so2) > 200  # exceedances of 3–5 × the ~80 mg/m³ mean


def test_simulator_is_deterministic_with_a_seed():
    import random

    start = datetime(2024, 1, 5, tzinfo=timezone.utc)
    first = VirtualDevice(DeviceSpec(mn=MN, malformed_rate=0.3), random.Random(5), start)
    second = VirtualDevice(DeviceSpec(mn=MN, malformed_rate=0.3), random.Random(5), start)
    assert [first.packets_for_tick() for _ in range(30)] == [second.packets_for_tick() for _ in range(30)]


@pytest.mark.parametrize("start, per_device", [
    # three simulated minutes inside one hour: a real-time and a minute packet each
    ("2026-06-01T10:20:00", 3 * 2),
    # the third minute closes the hour (10:58 → 11:00, Beijing time): its hourly packet comes too
    ("2026-06-01T10:57:00", 3 * 2 + 1),
])
def test_simulate_command_against_a_receiver_in_another_thread(start, per_device):
    import json
    import threading

    from typer.testing import CliRunner

    from ingot.monitoring.simulator import app

    loop = asyncio.new_event_loop()
    sink = InMemorySink()
    mns = [f"88SIM{index:019d}" for index in range(1, 4)]
    server = ReceiverServer(StaticDirectory({mn: "654321" for mn in mns}), sink)
    loop.run_until_complete(server.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        result = CliRunner().invoke(app, ["--devices", "3", "--port", str(server.port), "--seconds", "30",
                                          "--interval", "0", "--ticks", "3", "--password", "654321", "--seed", "1",
                                          "--start", start])
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["devices"] == 3 and report["packets_sent"] == 3 * per_device and report["answers"] == 3 * per_device
    assert {r.packet.mn for r in sink.accepted} == set(mns)


def test_simulate_refuses_a_start_that_is_not_a_time():
    from typer.testing import CliRunner

    from ingot.monitoring.simulator import app

    result = CliRunner().invoke(app, ["--devices", "1", "--port", "1", "--ticks", "1", "--start", "yesterday"])
    assert result.exit_code != 0 and "--start" in result.output and "ISO 8601" in result.output


def test_random_bytes_on_one_connection_do_not_disturb_another():
    import random

    rng = random.Random(99)
    noise = [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 900))) + rng.choice([b"", b"\r\n", b"##", b"##0100"])
             for _ in range(200)]

    async def scenario(server, sink):
        _noise_reader, noisy = await asyncio.open_connection("127.0.0.1", server.port)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        answers = []
        for index, chunk in enumerate(noise):
            noisy.write(chunk)
            if index % 20 == 0:
                writer.write(data_packet(index // 20))
                answers += await read_answers(reader, 1)
        writer.close()
        return answers, server.stats

    answers, stats = run(scenario, max_buffer=4096)
    assert len(answers) == 10 and stats.packets_accepted == 10


class _SlowDirectory(StaticDirectory):
    """Authenticates only after other connections have had their turn, as a database lookup would."""

    async def authenticate(self, mn, password):
        await asyncio.sleep(0.05)
        return await super().authenticate(mn, password)


class _SmallSink(InMemorySink):
    """Says it is full after every hand-over until a consumer has made room: the back-pressure path."""

    def __init__(self):
        super().__init__()
        self.room = asyncio.Event()
        self.waits = 0

    def put_nowait_many(self, received):
        super().put_nowait_many(received)
        self.room.clear()
        return False

    async def wait_for_room(self):
        self.waits += 1
        await self.room.wait()


def test_packets_after_an_awaited_authentication_or_a_full_sink_keep_their_order():
    async def scenario(server, sink):
        async def make_room():
            while True:
                await asyncio.sleep(0.01)
                sink.room.set()

        consumer = asyncio.create_task(make_room())
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        # a new MN, then a wrong password and the right one again (each asks the directory), in few writes
        stream = (b"".join(data_packet(i) for i in range(3)) + data_packet(3, password="000000")
                  + b"".join(data_packet(i) for i in range(4, 40)))
        for offset in range(0, len(stream), 700):
            writer.write(stream[offset:offset + 700])
        answers = await read_answers(reader, 39)
        await sink.wait_for(lambda s: len(s.received) == 40)
        consumer.cancel()
        writer.close()
        return answers, sink, server.stats

    answers, sink, stats = run(scenario, directory=_SlowDirectory({MN: "123456"}), sink_type=_SmallSink)
    minutes = [i for i in range(40) if i != 3]
    assert [decode(a).qn for a in answers] == [f"2024010510{i:02d}00001" for i in minutes]
    assert [r.packet.qn[8:12] for r in sink.received] == [f"10{i:02d}" for i in range(40)]
    assert [r.accepted for r in sink.received].count(False) == 1 and sink.received[3].reason_code == "auth_failed"
    assert sink.waits >= 2 and stats.packets_accepted == 39


def test_two_receivers_share_one_port_with_reuse_port():
    async def main():
        sinks = [InMemorySink(), InMemorySink()]
        first = await ReceiverServer(StaticDirectory({MN: "123456"}), sinks[0]).start("127.0.0.1", 0, reuse_port=True)
        second = await ReceiverServer(StaticDirectory({MN: "123456"}), sinks[1]).start("127.0.0.1", first.port,
                                                                                          reuse_port=True)
        try:
            async def device(minute):
                reader, writer = await asyncio.open_connection("127.0.0.1", first.port)
                writer.write(data_packet(minute))
                answer = await read_answers(reader, 1)
                writer.close()
                return answer

            answers = await asyncio.gather(*(device(i) for i in range(60)))
            await asyncio.sleep(0.1)
            return answers, [len(sink.accepted) for sink in sinks]
        finally:
            await first.stop()
            await second.stop()

    answers, counts = asyncio.run(main())
    assert len(answers) == 60 and sum(counts) == 60
    assert min(counts) > 0  # the kernel gave both receivers connections (60 of them: both shares empty is ~1e-18)


def test_stop_returns_once_every_connection_has_closed():
    async def main():
        sink = InMemorySink()
        server = ReceiverServer(StaticDirectory({MN: "123456"}), sink)
        await server.start("127.0.0.1", 0)
        clients = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(20)]
        reader, writer = clients[0]
        writer.write(data_packet(1))
        await read_answers(reader, 1)
        while server.stats.connections_open < 20:
            await asyncio.sleep(0.01)
        assert server.connected_mns == [MN]
        await server.stop()
        figures = (server.stats.connections_open, server.connected_mns)
        for _reader, client in clients:
            client.close()
        return figures

    assert _run_loop(main()) == (0, [])
