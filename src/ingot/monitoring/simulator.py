"""Virtual CEMS devices (flue-gas continuous emission monitoring at smelter stacks) speaking HJ 212-2017 over TCP.

Each device sends real-time (2011) data every tick and a minute packet (2051) per simulated minute, hourly (2061)
and daily (2031) packets at the hour and day boundaries of its simulated clock, asks for a 9014 answer on each, and
answers the platform's commands (9011 + upload + 9012, or 9013). Exceedances, outages, split packets and malformed
packets are configurable per device. Everything random comes from one seed, so a run is reproducible.

Magnitudes are typical of a desulphurised copper/lead/zinc smelter stack: SO2 ~80 mg/m³, NOx ~120 mg/m³,
particulates ~8 mg/m³, O2 ~10 %, flow ~80 m³/s, 70 °C. They are demo values, not measurements.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Optional

import typer

from ingot.core.timeutil import SHANGHAI
from ingot.monitoring.hj212.codec import HJ212Error, decode, flag_for, format_qn, format_time, frame


# How much history a simulated logger keeps for the platform's history requests: six hours of minutes, three days of
# hours, a month of days (small enough for a fleet of thousands in one process; not a figure of the standard).
HISTORY_KEPT = {"2051": 6 * 60, "2061": 72, "2031": 31}


@dataclass(frozen=True)
class Factor:
    code: str
    mean: Decimal
    spread: Decimal          # relative standard deviation
    places: int
    converted: bool = False  # has a Zs (O2-corrected) value


STACK_FACTORS = (
    Factor("a21026", Decimal("80"), Decimal("0.15"), 2, True),    # SO2, mg/m³
    Factor("a21002", Decimal("120"), Decimal("0.12"), 2, True),   # NOx, mg/m³
    Factor("a34013", Decimal("8"), Decimal("0.25"), 2, True),     # particulates, mg/m³
    Factor("a19001", Decimal("10"), Decimal("0.05"), 2),          # O2, %
    Factor("a00000", Decimal("80"), Decimal("0.08"), 2),          # flow, m³/s
    Factor("a01012", Decimal("70"), Decimal("0.04"), 1),          # temperature, °C
    Factor("a01011", Decimal("12"), Decimal("0.08"), 2),          # velocity, m/s
    Factor("a01013", Decimal("-0.3"), Decimal("0.3"), 3),         # static pressure, kPa
    Factor("a01014", Decimal("8"), Decimal("0.1"), 2),            # humidity, %
)
_BY_CODE = {factor.code: factor for factor in STACK_FACTORS}


@dataclass(frozen=True)
class DeviceSpec:
    mn: str
    password: str = "123456"
    st: str = "31"
    pollutants: tuple[str, ...] = tuple(f.code for f in STACK_FACTORS)
    exceedance_rate: float = 0.0     # chance per simulated minute that SO2/NOx/particulates spike 3–5 ×
    outage_rate: float = 0.0         # chance per tick of dropping the connection
    outage_seconds: float = 2.0
    malformed_rate: float = 0.0      # chance per tick of sending a corrupt packet (bad CRC or garbage)
    split_hourly: bool = False       # send hourly packets as PNUM=2 split packets
    reference_o2: Decimal = Decimal("9")  # O2 reference for Zs values; a demo setting, not a permit value
    refuses: tuple[str, ...] = ()    # platform commands (CN) the logger refuses with 9011 QnRtn=2


@dataclass
class FleetReport:
    devices: int = 0
    packets_sent: int = 0
    answers: int = 0
    malformed_sent: int = 0
    outages: int = 0
    commands_answered: int = 0
    connect_failures: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)

    @property
    def p99_ms(self) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3)

    def as_dict(self) -> dict:
        out = {k: v for k, v in vars(self).items() if k != "latencies"}
        out["p99_ms"] = self.p99_ms
        out["packets_per_second"] = round(self.packets_sent / self.seconds, 1) if self.seconds else None
        return out


class VirtualDevice:
    """One simulated data logger. `packets_for_tick` is pure given the RNG, so its output is reproducible."""

    def __init__(self, spec: DeviceSpec, rng: random.Random, start: datetime):
        self.spec, self.rng = spec, rng
        self.clock = start.astimezone(SHANGHAI).replace(second=0, microsecond=0)
        self.rtd_interval = 30
        self.minute_interval = 1
        self.minutes: list[dict[str, Decimal]] = []
        # What the logger keeps for history requests (2051/2061/2031): data time → the CP body it sent.
        self.history: dict[str, deque[tuple[datetime, str]]] = {
            "2051": deque(maxlen=HISTORY_KEPT["2051"]), "2061": deque(maxlen=HISTORY_KEPT["2061"]),
            "2031": deque(maxlen=HISTORY_KEPT["2031"])}
        self.hours: list[dict[str, Decimal]] = []
        self.exceeding = 0

    def _sample(self) -> dict[str, Decimal]:
        values = {}
        spike = Decimal(self.rng.uniform(3, 5)).quantize(Decimal("0.01")) if self.exceeding else Decimal(1)
        for code in self.spec.pollutants:
            factor = _BY_CODE.get(code, Factor(code, Decimal("10"), Decimal("0.1"), 2))
            value = Decimal(repr(self.rng.gauss(float(factor.mean), float(abs(factor.mean * factor.spread)))))
            if factor.converted:
                value = abs(value) * spike
            values[code] = value.quantize(Decimal(1).scaleb(-factor.places))
        return values

    def _zs(self, value: Decimal, o2: Decimal | None) -> Decimal:
        """The value converted to the reference O2 content (the Zs values of HJ 212)."""
        if o2 is None or o2 >= Decimal("20.5"):
            return value
        exponent = value.as_tuple().exponent
        quantum = Decimal(1).scaleb(exponent) if isinstance(exponent, int) else Decimal(1)
        return (value * (Decimal(21) - self.spec.reference_o2) / (Decimal(21) - o2)).quantize(quantum)

    def _segment(self, cn: str, qn_offset_ms: int, body: str, split: tuple[int, int] | None = None) -> str:
        qn = format_qn(self.clock + timedelta(milliseconds=qn_offset_ms))
        head = f"QN={qn};ST={self.spec.st};CN={cn};PW={self.spec.password};MN={self.spec.mn};"
        if split:
            head += f"Flag={flag_for(split=True, answer=True)};PNUM={split[0]};PNO={split[1]};"
        else:
            head += f"Flag={flag_for(answer=True)};"
        return head + "CP=&&" + body + "&&"

    def _aggregate_items(self, samples: list[dict[str, Decimal]], data_time: datetime, codes) -> str:
        o2s = [s["a19001"] for s in samples if "a19001" in s]
        o2 = (sum(o2s) / len(o2s)) if o2s else None
        items = [f"DataTime={format_time(data_time)}"]
        for code in codes:
            series = [s[code] for s in samples if code in s]
            if not series:
                continue
            exponent = series[0].as_tuple().exponent
            quantum = Decimal(1).scaleb(exponent) if isinstance(exponent, int) else Decimal(1)
            average = (sum(series) / len(series)).quantize(quantum)
            parts = [f"{code}-Min={min(series)}", f"{code}-Avg={average}", f"{code}-Max={max(series)}"]
            if _BY_CODE.get(code, Factor(code, 0, 0, 0)).converted:
                parts.append(f"{code}-ZsAvg={self._zs(average, o2)}")
            flag = "N" if len(series) >= 0.75 * len(samples) else "F"
            parts.append(f"{code}-Flag={flag}")
            items.append(",".join(parts))
        return ";".join(items)

    def packets_for_tick(self) -> list[tuple[bytes, bool]]:
        """Advance the simulated clock one minute; the packets the logger sends for it, each with whether it is
        well-formed (and so will be answered)."""
        rng, spec = self.rng, self.spec
        if self.exceeding:
            self.exceeding -= 1
        elif spec.exceedance_rate and rng.random() < spec.exceedance_rate:
            self.exceeding = rng.randint(5, 90)
        self.clock += timedelta(minutes=1)
        sample = self._sample()
        self.minutes.append(sample)
        o2 = sample.get("a19001")
        rtd = [f"DataTime={format_time(self.clock)}"]
        for code, value in sample.items():
            parts = [f"{code}-Rtd={value}"]
            if _BY_CODE.get(code, Factor(code, 0, 0, 0)).converted:
                parts.append(f"{code}-ZsRtd={self._zs(value, o2)}")
            parts.append(f"{code}-Flag=N")
            rtd.append(",".join(parts))
        out = [frame(self._segment("2011", 0, ";".join(rtd)))]
        # the minute packet covers the minute that just ended, from its real-time samples
        minute_start = self.clock - timedelta(minutes=1)
        minute_body = self._aggregate_items([sample], minute_start, spec.pollutants)
        self.history["2051"].append((minute_start, minute_body))
        out.append(frame(self._segment("2051", 1, minute_body)))
        if self.clock.minute == 0:
            hour_start = self.clock - timedelta(hours=1)
            hourly = self._aggregate_items(self.minutes[-60:], hour_start, spec.pollutants)
            self.history["2061"].append((hour_start, hourly))
            self.hours.append({k: v for k, v in sample.items()})
            self.minutes = self.minutes[-60:]
            if spec.split_hourly:
                head, _, rest = hourly.partition(";")
                groups = rest.split(";")
                half = max(1, len(groups) // 2)
                for number, chunk in enumerate((groups[:half], groups[half:]), start=1):
                    out.append(frame(self._segment("2061", 2, ";".join([head, *chunk]), split=(2, number))))
            else:
                out.append(frame(self._segment("2061", 2, hourly)))
            if self.clock.hour == 0:
                daily = self._aggregate_items(self.hours[-24:], self.clock - timedelta(days=1), spec.pollutants)
                self.history["2031"].append((self.clock - timedelta(days=1), daily))
                out.append(frame(self._segment("2031", 3, daily)))
                self.hours = self.hours[-24:]
        if spec.malformed_rate and rng.random() < spec.malformed_rate:
            victim = bytearray(out[0])
            if rng.random() < 0.5:
                victim[-3] = ord("0") if victim[-3] != ord("0") else ord("1")  # CRC no longer matches
                bad = bytes(victim)
            else:
                bad = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40))) + b"\r\n"
            return [(bad, False)] + [(packet, True) for packet in out]
        return [(packet, True) for packet in out]

    def answers_to(self, packet_text: bytes) -> list[bytes]:
        """The logger's replies to a platform request (9011, upload, 9012) or notification (9013)."""
        try:
            request = decode(packet_text, ("free_form_mn", "long_password", "lowercase_crc"))
        except HJ212Error:
            return []
        if request.cn.startswith("9") or request.mn != self.spec.mn:
            return []
        qn = request.qn or format_qn(self.clock)
        head = f"QN={qn};ST=91;PW={self.spec.password};MN={self.spec.mn};Flag={flag_for()};"
        if request.cn in ("2012", "2022"):
            return [frame(head.replace("ST=91;", "ST=91;CN=9013;") + "CP=&&&&")]
        if request.cn in self.spec.refuses:
            return [frame(head + "CN=9011;CP=&&QnRtn=2&&")]
        replies = [frame(head + "CN=9011;CP=&&QnRtn=1&&")]
        execution = 1
        if request.cn == "1012":
            try:
                self.clock = datetime.strptime(request.params.get("SystemTime", ""), "%Y%m%d%H%M%S").replace(tzinfo=SHANGHAI)
            except ValueError:
                execution = 3
        elif request.cn == "1062":
            value = request.params.get("RtdInterval", "")
            if value.isdigit() and 30 <= int(value) <= 3600:
                self.rtd_interval = int(value)
            else:
                execution = 3
        elif request.cn == "1011":
            replies.append(frame(f"QN={qn};ST={self.spec.st};CN=1011;PW={self.spec.password};MN={self.spec.mn};"
                                 f"Flag={flag_for()};CP=&&SystemTime={format_time(self.clock)}&&"))
        elif request.cn == "1061":
            replies.append(frame(f"QN={qn};ST={self.spec.st};CN=1061;PW={self.spec.password};MN={self.spec.mn};"
                                 f"Flag={flag_for()};CP=&&RtdInterval={self.rtd_interval}&&"))
        elif request.cn == "1063":
            replies.append(frame(f"QN={qn};ST={self.spec.st};CN=1063;PW={self.spec.password};MN={self.spec.mn};"
                                 f"Flag={flag_for()};CP=&&MinInterval={self.minute_interval}&&"))
        elif request.cn == "1064":
            value = request.params.get("MinInterval", "")
            if value.isdigit() and int(value) in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30):
                self.minute_interval = int(value)
            else:
                execution = 3
        elif request.cn in self.history:
            uploads = self._history_uploads(request)
            if uploads is None:
                execution = 3
            elif not uploads:
                execution = 100
            replies.extend(uploads or ())
        replies.append(frame(head + f"CN=9012;CP=&&ExeRtn={execution}&&"))
        return replies


    def _history_uploads(self, request) -> list[bytes] | None:
        """The kept packets of the requested kind between BeginTime and EndTime (inclusive), each under a QN of its
        own as in appendix C.20; None when the request's times are not YYYYMMDDhhmmss."""
        try:
            begin, end = (datetime.strptime(request.params.get(name, ""), "%Y%m%d%H%M%S").replace(tzinfo=SHANGHAI)
                          for name in ("BeginTime", "EndTime"))
        except ValueError:
            return None
        uploads = []
        # The logger's own QNs: its clock's milliseconds, one apart, past the request's QN (a fast logger answers
        # within the millisecond the request was sent in).
        first = datetime.now(SHANGHAI)
        try:
            requested = datetime.strptime(request.qn or "", "%Y%m%d%H%M%S%f").replace(tzinfo=SHANGHAI)
        except ValueError:
            requested = None
        if requested is not None:
            first = max(first, requested + timedelta(milliseconds=1))
        for data_time, body in self.history[request.cn]:
            if begin <= data_time <= end:
                qn = format_qn(first + timedelta(milliseconds=len(uploads)))
                uploads.append(frame(f"QN={qn};ST={self.spec.st};CN={request.cn};PW={self.spec.password};"
                                     f"MN={self.spec.mn};Flag={flag_for()};CP=&&{body}&&"))
        return uploads


async def _run_device(host: str, port: int, device: VirtualDevice, report: FleetReport, stop_at: float,
                      interval: float, max_in_flight: int, max_ticks: Optional[int]) -> None:
    loop = asyncio.get_running_loop()
    ticks = 0
    while loop.time() < stop_at and (max_ticks is None or ticks < max_ticks):
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            report.connect_failures += 1
            await asyncio.sleep(min(1.0, max(0.0, stop_at - loop.time())))
            continue
        sent_at: dict[bytes, list[float]] = {}  # QN → send times (split parts share their QN)
        window = asyncio.Semaphore(max_in_flight)

        async def read_answers() -> None:
            while True:
                line = await reader.readuntil(b"\r\n")
                qn_at = line.find(b"QN=")
                qn = line[qn_at + 3:qn_at + 20] if qn_at >= 0 else b""
                if b"CN=9014" in line:
                    times = sent_at.get(qn)
                    if times:
                        report.answers += 1
                        report.latencies.append(time.perf_counter() - times.pop(0))
                        if not times:
                            del sent_at[qn]
                        window.release()
                else:
                    replies = device.answers_to(line)
                    if replies:
                        writer.write(b"".join(replies))
                        report.commands_answered += 1

        answers = asyncio.create_task(read_answers())
        outage = False
        try:
            while loop.time() < stop_at and (max_ticks is None or ticks < max_ticks):
                ticks += 1
                for packet, well_formed in device.packets_for_tick():
                    if well_formed:
                        qn_at = packet.find(b"QN=")
                        try:
                            await asyncio.wait_for(window.acquire(), 10)
                        except asyncio.TimeoutError:
                            pass  # an answer went missing; keep sending rather than stall the device
                        sent_at.setdefault(packet[qn_at + 3:qn_at + 20], []).append(time.perf_counter())
                    else:
                        report.malformed_sent += 1
                    writer.write(packet)
                    report.packets_sent += 1
                await writer.drain()
                if device.spec.outage_rate and device.rng.random() < device.spec.outage_rate:
                    report.outages += 1
                    outage = True
                    break
                if interval:
                    await asyncio.sleep(interval)
            if not outage:
                # let the last answers arrive before hanging up
                deadline = loop.time() + 2.0
                while sent_at and loop.time() < deadline:
                    await asyncio.sleep(0.01)
        except (ConnectionError, OSError):
            pass
        finally:
            answers.cancel()
            writer.close()
        if outage:
            await asyncio.sleep(device.spec.outage_seconds)
        elif loop.time() < stop_at and (max_ticks is None or ticks < max_ticks):
            await asyncio.sleep(0.2)  # the receiver hung up: reconnect like a real logger


def make_devices(specs: list[DeviceSpec], *, seed: int = 212, start: datetime | None = None) -> list[VirtualDevice]:
    """Virtual loggers for `specs`, their clocks at `start` (default: now, floored to the minute), each with its own
    random stream drawn from `seed`."""
    begin = start or datetime.now(timezone.utc)
    master = random.Random(seed)
    return [VirtualDevice(spec, random.Random(master.getrandbits(64)), begin) for spec in specs]


async def run_fleet(host: str, port: int, devices: list[DeviceSpec] | list[VirtualDevice], *, seconds: float = 10.0,
                    seed: int = 212, interval: float = 1.0, start: datetime | None = None, max_in_flight: int = 4,
                    max_ticks: Optional[int] = None) -> FleetReport:
    """Run `devices` against (host, port) for `seconds` (or `max_ticks` simulated minutes per device).

    `devices` are specs (new loggers are made from `seed` and `start`, the simulated clock's start, default now) or
    loggers from `make_devices` or an earlier run, which carry on with their clocks, settings and history.
    `interval` is the real time between ticks (0 = as fast as the answers allow)."""
    report = FleetReport(devices=len(devices))
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds
    started = time.perf_counter()
    virtual = [device if isinstance(device, VirtualDevice) else None for device in devices]
    if any(device is None for device in virtual):
        virtual = make_devices(list(devices), seed=seed, start=start)
    await asyncio.gather(*(_run_device(host, port, device, report, stop_at, interval, max_in_flight, max_ticks)
                           for device in virtual))
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def pregenerate(devices: list[DeviceSpec], ticks: int, *, seed: int = 212,
                start: datetime | None = None) -> dict[str, list[bytes]]:
    """Each device's well-formed packets for `ticks` simulated minutes, generated up front (MN → packets), so a
    load generator can replay them without spending its CPU on the simulation while it is measured."""
    begin = start or datetime.now(timezone.utc)
    master = random.Random(seed)
    streams = {}
    for spec in devices:
        device = VirtualDevice(spec, random.Random(master.getrandbits(64)), begin)
        packets: list[bytes] = []
        for _ in range(ticks):
            packets.extend(packet for packet, ok in device.packets_for_tick() if ok)
        streams[spec.mn] = packets
    return streams


async def replay_fleet(host: str, port: int, streams: dict[str, list[bytes]], *, window: int = 8,
                       seconds: float = 60.0) -> FleetReport:
    """Light clients, one connection per device, each keeping `window` packets in flight: a packet goes out when
    the answer to an earlier one comes back (answers arrive in order on a connection). Latency is from writing a
    packet to reading its answer. Every replayed packet must ask for an answer (the simulator's all do)."""
    report = FleetReport(devices=len(streams))
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds
    clock = time.perf_counter
    latencies = report.latencies

    async def device(packets: list[bytes]) -> None:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            report.connect_failures += 1
            return
        sent: list[float] = []
        answered = 0
        first = packets[:window]
        writer.write(b"".join(first))
        now = clock()
        sent.extend(now for _ in first)
        report.packets_sent += len(first)
        next_index = len(first)
        pending = b""
        try:
            while answered < next_index:
                data = await reader.read(65536)
                if not data:
                    break
                now = clock()
                pending += data
                lines = pending.count(b"\r\n")
                if not lines:
                    continue
                pending = pending[pending.rfind(b"\r\n") + 2:]
                for index in range(answered, answered + lines):
                    latencies.append(now - sent[index])
                answered += lines
                report.answers += lines
                if next_index < len(packets) and loop.time() < stop_at:
                    more = packets[next_index:next_index + lines]
                    writer.write(b"".join(more))
                    now = clock()
                    sent.extend(now for _ in more)
                    next_index += len(more)
                    report.packets_sent += len(more)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(device(packets) for packets in streams.values()))
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _clock_start(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"不是 ISO 8601 时间：{text!r} / not an ISO 8601 time: {text!r}", param_hint="--start") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=SHANGHAI)
    return moment.astimezone(timezone.utc)


app = typer.Typer(help="HJ 212 CEMS 模拟器 / simulated CEMS devices", no_args_is_help=False, invoke_without_command=True)


@app.callback()
def simulate(
    devices: int = typer.Option(5, "--devices", "-n", min=1, help="number of devices"),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(9212, "--port"),
    seconds: float = typer.Option(60.0, "--seconds", min=0.1),
    interval: float = typer.Option(1.0, "--interval", min=0.0, help="real seconds between ticks (simulated minutes)"),
    password: str = typer.Option("123456", "--password"),
    mn_prefix: str = typer.Option("88SIM", "--mn-prefix"),
    exceedance_rate: float = typer.Option(0.0, "--exceedance-rate", min=0.0, max=1.0),
    outage_rate: float = typer.Option(0.0, "--outage-rate", min=0.0, max=1.0),
    malformed_rate: float = typer.Option(0.0, "--malformed-rate", min=0.0, max=1.0),
    split_hourly: bool = typer.Option(False, "--split-hourly"),
    seed: int = typer.Option(212, "--seed"),
    ticks: Optional[int] = typer.Option(None, "--ticks", min=1, help="stop each device after this many simulated minutes"),
    start: Optional[str] = typer.Option(
        None, "--start",
        help="模拟时钟起点（ISO 8601，未带时区按北京时间）/ the simulated clock's start (ISO 8601; without a zone, "
             "Beijing time); default now"),
) -> None:
    """运行模拟设备 / run simulated devices against a receiver; prints the fleet report as JSON."""
    import json

    specs = [DeviceSpec(mn=f"{mn_prefix}{index:0{max(1, 24 - len(mn_prefix))}d}"[:24], password=password,
                        exceedance_rate=exceedance_rate, outage_rate=outage_rate, malformed_rate=malformed_rate,
                        split_hourly=split_hourly) for index in range(1, devices + 1)]
    report = asyncio.run(run_fleet(host, port, specs, seconds=seconds, seed=seed, interval=interval, max_ticks=ticks,
                                   start=_clock_start(start)))
    typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))
