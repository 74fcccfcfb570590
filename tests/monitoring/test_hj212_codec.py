"""Codec rules, one by one, on packets built here from the standard's examples."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ingot.monitoring.hj212 import (
    HJ212Error, Packet, PollutantValues, Reassembler, crc_hj212, crc_modbus, decode, encode, flag_for, frame,
)
from ingot.monitoring.hj212.cli import app

MN = "010000A8900016F000169DC0"


def seg(cp: str = "DataTime=20160801084000;a21026-Rtd=58,a21026-Flag=N", *, head: str | None = None) -> str:
    head = head if head is not None else f"QN=20160801085000001;ST=31;CN=2011;PW=123456;MN={MN};Flag=5"
    return f"{head};CP=&&{cp}&&"


def reason(data, tolerate=()) -> str:
    with pytest.raises(HJ212Error) as rejected:
        decode(data, tolerate)
    assert rejected.value.message_zh and rejected.value.message_en
    return rejected.value.code


def test_crc_is_appendix_a_not_modbus():
    body = b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&"
    assert crc_hj212(body) == 0x1C80
    assert crc_modbus(b"123456789") == 0x4B37  # the MODBUS check value, to show the two differ
    assert crc_hj212(b"123456789") != 0x4B37


def test_minute_packet_decodes_every_field():
    packet = decode(frame(seg("DataTime=20240105103000;a21026-Min=10.5,a21026-Avg=12.25,a21026-Max=-3,a21026-ZsAvg=14,"
                              "a21026-Cou=1.5,a21026-Flag=D,a21026-EFlag=A1;a34013-Avg=3.0,a34013-Flag=N")))
    assert packet.data_time == datetime(2024, 1, 5, 2, 30, tzinfo=timezone.utc)
    assert packet.data_time.utcoffset().total_seconds() == 8 * 3600
    so2 = packet.pollutants["a21026"]
    assert so2.values == {"Min": Decimal("10.5"), "Avg": Decimal("12.25"), "Max": Decimal("-3"), "ZsAvg": Decimal("14"),
                          "Cou": Decimal("1.5")}
    assert all(type(v) is Decimal for v in so2.values.values())
    assert (so2.flag, so2.eflag) == ("D", "A1")
    assert packet.needs_answer and packet.version == 1 and packet.edition == "2017" and not packet.is_split


@pytest.mark.parametrize("text, code", [
    ("#0101", "frame_header"),
    ("##01x1QN=", "length_format"),
    ("##0005", "frame_truncated"),
    ("##0009abcdeABCD", "length_mismatch"),
])
def test_framing_rejections(text, code):
    assert reason(text.encode()) == code


def test_declared_length_must_match():
    good = frame(seg())
    bad = b"##" + b"%04d" % (int(good[2:6]) + 6) + good[6:]
    assert reason(bad) == "length_mismatch"
    assert decode(bad, ["length_includes_crc"]).tolerated == ("length_includes_crc",)


def test_crc_rules():
    good = frame(seg())
    wrong = b"%04X" % (int(good[-6:-2], 16) ^ 0x0101)
    assert reason(good[:-6] + wrong + b"\r\n") == "crc_mismatch"
    assert reason(good[:-6] + b"ZZZZ\r\n") == "crc_format"
    lower = good[:-6] + good[-6:-2].lower() + b"\r\n"
    if lower != good:
        assert reason(lower) == "crc_lowercase"
        assert decode(lower, ["lowercase_crc"]).mn == MN
    body = seg().encode()
    modbus = crc_modbus(body)
    swapped = b"##%04d%s%04X" % (len(body), body, (modbus & 0xFF) << 8 | modbus >> 8)
    assert reason(swapped) == "crc_mismatch"
    assert decode(swapped, ["modbus_crc"]).tolerated == ("modbus_crc",)


def test_segment_limit():
    long_cp = "DataTime=20160801084000;" + ";".join(f"a{21000 + i:05d}-Rtd={i}" for i in range(90))
    packet = frame(seg(long_cp))
    assert reason(packet) == "segment_too_long"
    assert len(decode(packet, ["oversize"]).pollutants) == 90


@pytest.mark.parametrize("head, code", [
    (f"QN=2016080108500000;ST=31;CN=2011;PW=123456;MN={MN};Flag=5", "qn_format"),
    (f"QN=20161301085000001;ST=31;CN=2011;PW=123456;MN={MN};Flag=5", "time_invalid"),
    (f"ST=31;CN=2011;PW=123456;MN={MN};Flag=5", "qn_missing"),
    (f"QN=20160801085000001;ST=3;CN=2011;PW=123456;MN={MN};Flag=5", "st_format"),
    (f"QN=20160801085000001;ST=99;CN=2011;PW=123456;MN={MN};Flag=5", "st_unknown"),
    (f"QN=20160801085000001;ST=31;CN=201;PW=123456;MN={MN};Flag=5", "cn_format"),
    (f"QN=20160801085000001;ST=31;CN=5000;PW=123456;MN={MN};Flag=5", "cn_unknown"),
    (f"QN=20160801085000001;ST=31;CN=2011;PW=1234567;MN={MN};Flag=5", "pw_format"),
    ("QN=20160801085000001;ST=31;CN=2011;PW=123456;MN=abc;Flag=5", "mn_format"),
    (f"QN=20160801085000001;ST=31;CN=2011;PW=123456;MN={MN};Flag=x", "flag_format"),
    (f"QN=20160801085000001;ST=31;CN=2011;PW=123456;MN={MN};Flag=256", "flag_format"),
    (f"QN=20160801085000001;ST=31;CN=2011;PW=123456;MN={MN};Flag=13", "version_unsupported"),
    (f"QN=20160801085000001;ST=31;CN=2011;PW=123456;MN={MN};Flag=7", "split_incomplete"),
    (f"QN=20160801085000001;ST=31;CN=2011;PW=123456;MN={MN};Flag=5;PNUM=2;PNO=1", "split_flag"),
    (f"QN=20160801085000001;ST=31;CN=2011;PW=123456;MN={MN};Flag=7;PNUM=2;PNO=3", "pno_range"),
    (f"QN=20160801085000001;ST=31;CN=2011;PW=123456;MN={MN};Flag=7;PNUM=0;PNO=0", "pnum_format"),
    (f"QN=20160801085000001;ST=31;ST=31;CN=2011;PW=123456;MN={MN};Flag=5", "header_duplicate"),
    (f"QN=20160801085000001;ST=31;CN=2011;PW=123456;MN={MN};Flag=5;XX=1", "header_unknown"),
    (f"QN=20160801085000001;ST=31;PW=123456;MN={MN};Flag=5", "cn_missing"),
    ("QN=20160801085000001;ST=31;CN=2011;PW=123456;Flag=5", "mn_missing"),
    ("QN=20160801085000001;ST=31;CN=2011;PW=123456;MN=ABCDEF0123456789ABCD", "flag_missing"),
])
def test_header_rejections(head, code):
    assert reason(frame(seg(head=head))) == code


def test_version_bits():
    newer = decode(frame(seg(head=f"QN=20160801085000001;ST=31;CN=2011;PW=123456;MN={MN};Flag=9")))
    assert (newer.version, newer.edition, newer.needs_answer) == (2, "2017", True)
    assert flag_for(version=1, split=True, answer=True) == 7


@pytest.mark.parametrize("cp, code", [
    ("DataTime=2016080108400;a21026-Rtd=1", "time_format"),
    ("DataTime=20160801084000;a21026-Rtd=1.2.3", "value_format"),
    ("DataTime=20160801084000;a21026-Rtd=", "value_format"),
    ("DataTime=20160801084000;a21026-Rtd=1e5", "value_format"),
    ("DataTime=20160801084000;a21026-Rtd=1234567890123456789", "value_format"),
    ("DataTime=20160801084000;a21026-Flag=X", "data_flag"),
    ("DataTime=20160801084000;a21026-Foo=1", "field_suffix"),
    ("DataTime=20160801084000;SO2-Rtd=1", "pollutant_code"),
    ("DataTime=20160801084000;01-Rtd=1", "pollutant_code"),
    ("DataTime=20160801084000;a21026-Rtd=1;", "cp_item"),
    ("DataTime=20160801084000;a21026-Rtd", "cp_item"),
    ("DataTime=20160801084000;a21026-Rtd=1,a21026-Rtd=2", "cp_duplicate"),
    ("DataTime=20160801084000;a21026-EFlag=TOOLONG", "eflag_format"),
    ("DataTime=20160801084000;a21026-SampleTime=2016", "time_format"),
])
def test_cp_rejections(cp, code):
    assert reason(frame(seg(cp))) == code


def test_cp_structure_rejections():
    assert reason(frame(f"QN=20160801085000001;ST=31;CN=2011;PW=123456;MN={MN};Flag=5")) == "cp_missing"
    assert reason(frame(f"QN=20160801085000001;ST=31;CN=2011;PW=123456;MN={MN};Flag=5;CP=&&a=1")) == "cp_unterminated"


def test_equipment_state_and_interaction_fields():
    packet = decode(frame(seg("DataTime=20160801084000;SB1-RS=1;SB2-RT=12.5;i12001-Info=abc")))
    assert packet.pollutants["SB1"].values["RS"] == 1 and packet.pollutants["SB2"].values["RT"] == Decimal("12.5")
    assert packet.pollutants["i12001"].texts == {"Info": "abc"}
    for cn, cp in (("9011", "QnRtn=1"), ("9012", "ExeRtn=1"), ("9013", ""), ("9014", "")):
        answer = decode(frame(seg(cp, head=f"QN=20160801085000001;ST=91;CN={cn};PW=123456;MN={MN};Flag=4")))
        assert answer.cn == cn and not answer.needs_answer


def test_2005_packet_maps_old_codes():
    packet = decode(frame("ST=31;CN=2011;PW=123456;MN=12345678901234;CP=&&DataTime=20180315134400;"
                          "02-Rtd=147.1,02-ZsRtd=160,02-Flag=N;S01-Rtd=8.0&&"))
    assert packet.edition == "2005" and packet.version == 0
    assert packet.pollutants["a21026"].original_code == "02" and packet.pollutants["a19001"].values["Rtd"] == Decimal("8.0")
    assert encode(packet).count(b"02-Rtd=147.1") == 1  # encoded back with the 2005 codes it came with


def test_tolerances_are_named_and_checked():
    spaced = frame(seg("DataTime=20160801084000; a21026-Rtd = 58").replace("CP=", "CP="))
    assert reason(spaced) == "pollutant_code"
    assert decode(spaced, ["stray_spaces"]).pollutants["a21026"].values["Rtd"] == 58
    with pytest.raises(HJ212Error) as unknown:
        decode(frame(seg()), ["no_such_tolerance"])
    assert unknown.value.code == "unknown_tolerance"


def test_split_packets_reassembled():
    head = f"QN=20160801085000001;ST=31;CN=2051;PW=123456;MN={MN};Flag=7;PNUM=2;PNO="
    first = decode(frame(seg("DataTime=20160801084000;a21026-Avg=1", head=head + "1")))
    second = decode(frame(seg("DataTime=20160801084000;a34013-Avg=2", head=head + "2")))
    joiner = Reassembler()
    assert joiner.add(second) is None and joiner.pending == 1
    whole = joiner.add(first)
    assert set(whole.pollutants) == {"a21026", "a34013"} and whole.pnum is None and whole.needs_answer
    assert joiner.pending == 0


# --- properties --------------------------------------------------------------------------------------------------

codes = st.sampled_from(["a21026", "a21002", "a34013", "a19001", "a01012", "a01011", "a00000", "w01018"])
numbers = st.decimals(min_value=Decimal("-99999999"), max_value=Decimal("99999999"), places=3, allow_nan=False,
                      allow_infinity=False)


@st.composite
def packets(draw):
    moment = draw(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(timezone.utc)))
    moment = moment.replace(microsecond=0)
    pollutants = {}
    for code in draw(st.lists(codes, unique=True, max_size=6)):
        suffixes = draw(st.lists(st.sampled_from(["Rtd", "Min", "Avg", "Max", "ZsAvg", "Cou"]), unique=True, min_size=1))
        pollutants[code] = PollutantValues(code, {s: draw(numbers) for s in suffixes},
                                           flag=draw(st.sampled_from([None, "N", "F", "M", "S", "D", "C", "T", "B"])))
    packet = Packet(st=draw(st.sampled_from(["31", "32", "22", "91"])), cn=draw(st.sampled_from(["2011", "2051", "2061", "2031"])),
                    pw=draw(st.text("0123456789abcXYZ", min_size=1, max_size=6)),
                    mn=draw(st.text("0123456789ABCDEF", min_size=24, max_size=24)),
                    qn="20240105103000123", flag=draw(st.sampled_from([4, 5, 8, 9])), pollutants=pollutants)
    packet.version = packet.flag >> 2
    packet.data_time = moment
    return packet


@settings(max_examples=200, deadline=None)
@given(packets())
def test_encode_decode_round_trip(packet):
    decoded = decode(encode(packet), ["oversize"])
    assert decoded.data_time == packet.data_time
    assert (decoded.st, decoded.cn, decoded.pw, decoded.mn, decoded.flag) == (packet.st, packet.cn, packet.pw, packet.mn, packet.flag)
    assert {c: (p.values, p.flag) for c, p in decoded.pollutants.items()} == {
        c: (p.values, p.flag) for c, p in packet.pollutants.items()}
    assert encode(decoded) == encode(packet)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_codec_errors(data):
    try:
        decode(data)
        decode(b"##" + data)
    except HJ212Error:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_segments_only_raise_codec_errors(text):
    for candidate in (text, seg(text), "QN=" + text + ";CP=&&&&"):
        try:
            decode(frame(candidate), ["stray_spaces", "sloppy_header", "nonstandard_codes", "unknown_fields",
                                      "bare_flag_item", "free_form_mn", "missing_qn_flag", "datatime_millis"])
        except HJ212Error:
            pass


# --- CLI ---------------------------------------------------------------------------------------------------------


def test_cli_decode_reports_each_line_and_exit_status():
    good = frame(seg()).decode().strip()
    result = CliRunner().invoke(app, ["decode"], input=f"{good}\n\nnot a packet\n")
    assert result.exit_code == 1
    first, second = [json.loads(line) for line in result.output.splitlines()]
    assert first["ok"] and first["mn"] == MN and first["pollutants"][0] == {"code": "a21026", "values": {"Rtd": "58"}, "flag": "N"}
    assert second == {"ok": False, "reason": "frame_header", "message": "包头必须为 ##",
                      "message_en": "packet must start with ##", "line": 3}
    assert CliRunner().invoke(app, ["decode"], input=good + "\n").exit_code == 0


def test_cli_decode_tolerance_and_bad_option():
    lower = frame(seg()).decode().strip()
    lower = lower[:-4] + lower[-4:].lower()
    assert CliRunner().invoke(app, ["decode", "--tolerate", "lowercase_crc"], input=lower + "\n").exit_code == 0
    bad = CliRunner().invoke(app, ["decode", "--tolerate", "everything"], input=lower + "\n")
    assert bad.exit_code == 2


def test_cli_encode_from_decode_output():
    good = frame(seg()).decode().strip()
    decoded = CliRunner().invoke(app, ["decode"], input=good + "\n").output
    encoded = CliRunner().invoke(app, ["encode"], input=decoded)
    assert encoded.exit_code == 0 and encoded.output.strip() == good
    floats = CliRunner().invoke(app, ["encode"], input=json.dumps({"st": "31", "cn": "2011", "pw": "1", "mn": MN, "qn": "20240105103000123",
                                                                  "flag": 4, "pollutants": [{"code": "a21026", "values": {"Rtd": 1.5}}]}) + "\n{oops\n")
    assert floats.exit_code == 1 and "json_value" in floats.output and "json_syntax" in floats.output


def _crc_bit_by_bit(data: bytes) -> int:
    register = 0xFFFF
    for byte in data:
        register = (register >> 8) ^ byte
        for _ in range(8):
            register = (register >> 1) ^ 0xA001 if register & 1 else register >> 1
    return register


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_table_crc_equals_the_appendix_bit_by_bit_crc(data):
    assert crc_hj212(data) == _crc_bit_by_bit(data)
