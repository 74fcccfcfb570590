"""The codec's compiled hot path (src/ingot/monitoring/hj212/_fastpath.c): its CRC against the appendix's bit-by-bit
loop and against the CRCs that independent implementations wrote into the corpus, and its strict fast path against
the general path on malformed input, text it leaves to the general path, and objects it must not leak."""
from __future__ import annotations

import decimal
import random
import sys

import pytest

from ingot.monitoring.hj212 import HJ212Error, codec, crc_hj212, crc_modbus, decode, frame
from ingot.monitoring.hj212.codes import NUMERIC_SUFFIXES, SYSTEM_CODES
from ingot.monitoring.receiver import DEFAULT_TOLERANCES
from ingot.monitoring.simulator import DeviceSpec, VirtualDevice

from tests.monitoring.test_hj212_corpus import EXPECTED, _corpus


def appendix_a_crc(data: bytes) -> int:
    """Appendix A's C code, line for line."""
    register = 0xFFFF
    for byte in data:
        register = (register >> 8) ^ byte
        for _ in range(8):
            carry = register & 1
            register >>= 1
            if carry:
                register ^= 0xA001
    return register


def modbus_crc(data: bytes) -> int:
    register = 0xFFFF
    for byte in data:
        register ^= byte
        for _ in range(8):
            carry = register & 1
            register >>= 1
            if carry:
                register ^= 0xA001
    return register


def test_crc_at_every_length_and_residue():
    # the compiled CRC folds eight bytes at a time below 16 bytes it loops: every length up to past one segment
    rng = random.Random(2017)
    for size in range(0, 1100):
        data = bytes(rng.getrandbits(8) for _ in range(size))
        assert crc_hj212(data) == appendix_a_crc(data), size
    for data in (b"\xff" * 1024, b"\x00" * 1024, bytes(range(256)) * 8):
        assert crc_hj212(data) == appendix_a_crc(data)
        assert crc_modbus(data) == modbus_crc(data)
    assert crc_hj212(b"") == 0xFFFF and crc_modbus(b"") == 0xFFFF
    assert crc_modbus(b"123456789") == 0x4B37  # the published CRC-16/MODBUS check value
    body = b"abc" * 100
    assert crc_hj212(bytearray(body)) == crc_hj212(memoryview(body)) == crc_hj212(body)
    with pytest.raises(TypeError):
        crc_hj212("text is not bytes")


def test_crc_matches_the_corpus():
    """The CRCs other projects' encoders (and the standard's example) wrote are known vectors for appendix A."""
    checked = 0
    for (_, line), (position, _, _, reason) in zip(_corpus(), EXPECTED):
        packet = line.encode("utf-8")
        segment, sent = packet[6:-4], int(packet[-4:], 16)
        if reason == "crc_mismatch":
            assert sent != crc_hj212(segment), position
            if position == 19:  # MODBUS, sent low byte first
                modbus = crc_modbus(segment)
                assert sent == (modbus & 0xFF) << 8 | modbus >> 8
        else:
            assert sent == crc_hj212(segment) == appendix_a_crc(segment), position
            checked += 1
    assert checked >= 25


def _outcome(function, *args):
    try:
        return function(*args).as_json()
    except HJ212Error as error:
        return (error.code, error.message_en, error.field)


def _reframe(segment: bytes) -> bytes:
    """A segment (even a broken one) framed with its true length and CRC, so that only the segment is wrong."""
    return b"##%04d%s%04X\r\n" % (len(segment), segment, crc_hj212(segment))


def _typical_packets() -> list[bytes]:
    device = VirtualDevice(DeviceSpec(mn="010000A8900016F000169DC0", split_hourly=True), random.Random(5),
                           codec.parse_time("20240105235000", "t"))
    packets: list[bytes] = []
    for _ in range(12):
        packets.extend(packet for packet, ok in device.packets_for_tick() if ok)
    return packets


def test_malformed_packets_give_the_general_paths_reason_codes():
    """Every truncation and single-byte change of typical packets, and every single-byte change and deletion in
    their segments framed again with a right length and CRC: decode (which tries the compiled path first) answers
    exactly what the general path alone answers, strict and with the receiver's tolerances."""
    rng = random.Random(9)
    replacements = b"#0123456789;,=-&.+ ABCDEFNaz\r\n\x00\x80\xff"
    samples = rng.sample(_typical_packets(), 6)
    for packet in samples:
        assert codec._decode_fast(packet) is not None
        variants = [packet[:cut] for cut in range(len(packet))]
        variants += [packet[:at] + packet[at + 1:] for at in range(0, len(packet), 3)]
        variants += [packet[:at] + bytes([rng.choice(replacements)]) + packet[at + 1:] for at in range(len(packet))]
        segment = packet[6:-6]
        variants += [_reframe(segment[:at] + bytes([rng.choice(replacements)]) + segment[at + 1:])
                     for at in range(len(segment))]
        variants += [_reframe(segment[:at] + segment[at + 1:]) for at in range(len(segment))]
        for variant in variants:
            for tolerate in (frozenset(), DEFAULT_TOLERANCES):
                assert _outcome(decode, variant, tolerate) == _outcome(codec._decode_general, variant, tolerate)


def test_text_beyond_ascii_goes_to_the_general_path():
    head = "QN=20240105103000123;ST=31;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&"
    chinese = frame(head + "DataTime=20240105103000;Info=烟道正常;a21026-Rtd=1.5&&")
    assert codec._decode_fast(chinese) is None
    assert decode(chinese).params["Info"] == "烟道正常"
    assert decode(chinese).pollutants["a21026"].values["Rtd"] == decimal.Decimal("1.5")
    broken = frame(head + "DataTime=20240105103000;a21026-Rtd=1.5&&")
    broken = broken[:-12] + b"\xff" + broken[-11:]
    assert codec._decode_fast(broken) is None
    assert _outcome(decode, broken) == _outcome(codec._decode_general, broken, frozenset())


def test_values_are_exact_whatever_the_decimal_context():
    packet = frame("QN=20240105103000123;ST=31;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"
                   "CP=&&DataTime=20240105103000;a21026-Rtd=12345678901234567,a21026-ZsRtd=-0.000100&&")
    with decimal.localcontext(decimal.Context(prec=3, traps=[decimal.Inexact, decimal.Rounded])):
        fast = codec._decode_fast(packet)
        general = codec._decode_general(packet, frozenset())
    assert fast == general
    assert [str(value) for value in fast.pollutants["a21026"].values.values()] == ["12345678901234567", "-0.000100"]


def test_the_classes_it_fills_must_keep_their_fields():
    from ingot.monitoring.hj212 import _fastpath

    packet_fields = tuple(item.name for item in codec.dataclasses.fields(codec.Packet))
    pollutant_fields = tuple(item.name for item in codec.dataclasses.fields(codec.PollutantValues))
    with pytest.raises(ValueError, match="update decode_strict"):
        _fastpath.configure(codec.Packet, packet_fields + ("extra",), codec.PollutantValues, pollutant_fields,
                            decimal.Decimal, codec.SHANGHAI, {}, {}, {}, ())
    assert codec._decode_fast(_typical_packets()[0]) is not None  # a refused configuration changes nothing


def test_no_references_leak():
    """Objects the compiled path shares into every packet (code table keys, suffix keys, the zone) are back at
    their reference counts once the packets are gone, after accepted packets and after ones it hands back."""
    packets = _typical_packets()
    # refused late, after the compiled path has built values: a second '=' near the end, an unknown flag
    damaged = [_reframe(packet[6:-36] + b"=" + packet[-35:-6]) for packet in packets]
    damaged += [_reframe(packet[6:-6].replace(b"-Flag=N", b"-Flag=X")) for packet in packets]
    shared = [next(key for key in SYSTEM_CODES if key == "31"), codec.SHANGHAI, *NUMERIC_SUFFIXES]
    for packet in packets + damaged:  # warm every cache first
        codec._decode_fast(packet)
    before = [sys.getrefcount(item) for item in shared]
    for _ in range(20):
        results = [codec._decode_fast(packet) for packet in packets + damaged]
        assert sum(result is not None for result in results) == len(packets)
        del results
    assert [sys.getrefcount(item) for item in shared] == before
