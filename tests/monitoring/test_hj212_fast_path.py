"""The codec's fast path (precompiled checks for strictly well-formed packets) against its general path (every rule
and tolerance one by one): whenever the fast path returns a packet, the general path, under any set of tolerances
that does not strip spaces, returns the same packet with no tolerance used; and typical packets do take the fast
path, so the comparison is not vacuous."""
from __future__ import annotations

import random
from datetime import datetime, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ingot.monitoring.hj212 import HJ212Error, TOLERANCES, codec, decode, frame
from ingot.monitoring.simulator import DeviceSpec, VirtualDevice

from tests.monitoring.test_hj212_corpus import CORPUS, _corpus

ALL_BUT_SPACES = frozenset(TOLERANCES) - {"stray_spaces"}


def _general(packet: bytes, tolerate: frozenset[str]):
    try:
        return codec._decode_general(packet, tolerate)
    except HJ212Error as error:
        return error


def _same(fast, general) -> None:
    assert not isinstance(general, HJ212Error), f"fast path accepted what the general path rejects: {general.code}"
    assert fast == general
    assert fast.as_json() == general.as_json()
    assert general.tolerated == () and fast.tolerated == ()
    for entry in fast.pollutants.values():
        assert all(type(value) is Decimal for value in entry.values.values())
        assert [str(v) for v in entry.values.values()] == [str(v) for v in general.pollutants[entry.code].values.values()]


def check(packet: bytes) -> bool:
    """Compare the two paths on one packet; True when the fast path took it."""
    fast = codec._decode_fast(packet)
    if fast is None:
        return False
    _same(fast, _general(packet, frozenset()))
    _same(codec._decode_fast(packet), _general(packet, ALL_BUT_SPACES))
    return True


def test_simulated_packets_take_the_fast_path_and_agree():
    rng = random.Random(7)
    devices = [VirtualDevice(DeviceSpec(mn=f"{index:024X}", split_hourly=index % 2 == 0),
                             random.Random(rng.getrandbits(64)), datetime(2024, 1, 5, 23, 50, tzinfo=timezone.utc))
               for index in range(4)]
    taken = total = 0
    for _ in range(30):  # through an hour and a day boundary: 2011, 2051, 2061 (split too) and 2031
        for device in devices:
            for packet, ok in device.packets_for_tick():
                total += 1
                taken += check(packet)
                assert decode(packet).as_json() == codec._decode_general(packet, frozenset()).as_json()
    assert taken == total


def test_corpus_packets_agree():
    if not CORPUS.exists():
        return
    taken = 0
    for _, line in _corpus():
        packet = line.encode("utf-8") + b"\r\n"
        taken += check(packet)
        for tolerate in (frozenset(), ALL_BUT_SPACES, frozenset(TOLERANCES)):
            general = _general(packet, tolerate)
            try:
                result = decode(packet, tolerate)
            except HJ212Error as error:
                assert isinstance(general, HJ212Error) and (error.code, error.message_en) == (general.code, general.message_en)
            else:
                assert not isinstance(general, HJ212Error) and result.as_json() == general.as_json()
    assert taken >= 3


HEAD = "QN=20240105103000123;ST=31;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"
keys = st.sampled_from(["DataTime", "a21026-Rtd", "a21026-ZsRtd", "a21026-Flag", "a21026-EFlag", "a34013-Avg",
                        "a34013-Cou", "a34013-Flag", "w01018-Rtd", "a21026-Rtd-x", "Flag", "RtdInterval", "QnRtn",
                        "SB1-RS", "a2102-Rtd", "A21026-Rtd", "a21026-Foo", "", " a21026-Rtd", "Data Time", "é1",
                        "a21026-Data", "a21026-DayData", "i12345-Rtd", "a21026-SampleTime"])
values = st.sampled_from(["20240105103000", "20240230103000", "20240105103000123", "1", "-1", "+1.5", ".5", "5.",
                          ".", "-", "", "1.2.3", "1-2", "--1", "1e5", "NaN", "Infinity", " 1", "1 ", "١٢", "1_0",
                          "12345678901234567", "123456789012345678", "1234567890123456789", "N", "F", "X", "n",
                          "NN", "a=b", "0.000", "-0", "&&", "值"])
separators = st.sampled_from([";", ",", ";;", ",,", ";,"])


good_items = st.sampled_from(["DataTime=20240105103000", "a21026-Rtd=12.5", "a21026-ZsRtd=-0.5", "a21026-Flag=N",
                              "a34013-Avg=.5", "a34013-Cou=5.", "a34013-Flag=D", "w01018-Rtd=+1", "RtdInterval=30",
                              "QnRtn=1", "a21026-Max=0.000", "i12345-Rtd=12345678901234567", "SystemTime=",
                              "a19001-DayData=1", "Info=说明"])


@st.composite
def cps(draw) -> str:
    """Mostly well-formed CP (so that the fast path is taken), with now and then one defect of many kinds."""
    items = draw(st.lists(good_items, unique_by=lambda item: item.partition("=")[0], max_size=9))
    defect = draw(st.integers(0, 5)) if items else 0
    if defect == 1:
        items[draw(st.integers(0, len(items) - 1))] = draw(keys) + "=" + draw(values)
    elif defect == 2:
        items[draw(st.integers(0, len(items) - 1))] = draw(keys)  # an item without '='
    elif defect == 3:
        items.append(draw(st.sampled_from(items)))  # a repeated key
    text = ""
    for index, item in enumerate(items):
        if index:
            text += draw(separators) if defect == 4 else draw(st.sampled_from([";", ","]))
        text += item
    return text


heads = st.sampled_from([
    HEAD, HEAD, HEAD, HEAD, HEAD, HEAD.replace("Flag=5", "Flag=4"), HEAD.replace("Flag=5", "Flag=4"), HEAD.replace("Flag=5", "Flag=9"), HEAD.replace("Flag=5", "Flag=1"),
    HEAD.replace("Flag=5", "Flag=13"), HEAD.replace("Flag=5", "Flag=256"), HEAD.replace("Flag=5", "Flag=7;PNUM=2;PNO=1"),
    HEAD.replace("Flag=5", "Flag=7;PNUM=2;PNO=3"), HEAD.replace("Flag=5", "Flag=5;PNUM=2;PNO=1"),
    HEAD.replace("Flag=5", "Flag=7"), HEAD.replace("ST=31", "ST=99"), HEAD.replace("CN=2011", "CN=1005"),
    HEAD.replace("QN=20240105103000123", "QN=20241305103000123"), HEAD.replace("PW=123456", "PW=1234567"),
    HEAD.replace("MN=010000A8900016F000169DC0", "MN=010000a8900016F000169DC0"),
])


@settings(max_examples=1500, deadline=None)
@given(heads, cps(), st.sampled_from(["", "\r\n"]), st.sampled_from(["", "upper", "lower", "length+6"]))
def test_fast_path_agrees_with_general_path(head, cp, ending, mangle):
    packet = frame(head + "CP=&&" + cp + "&&")
    if mangle == "lower":
        packet = packet[:-6] + packet[-6:-2].lower() + b"\r\n"
    elif mangle == "length+6":
        packet = b"##%04d" % (int(packet[2:6]) + 6) + packet[6:]
    packet = packet if ending else packet[:-2]
    check(packet)
    for tolerate in (frozenset(), ALL_BUT_SPACES):
        general = _general(packet, tolerate)
        try:
            result = decode(packet, tolerate)
        except HJ212Error as error:
            assert isinstance(general, HJ212Error) and (error.code, error.message_en) == (general.code, general.message_en)
        else:
            assert not isinstance(general, HJ212Error) and result == general and result.as_json() == general.as_json()
