"""The sink's COPY text made in C (hj212._fastpath.copy_escape and measurement_lines) against the Python formatting
it replaces (storage._copy_text's translate and storage._factor_lines): the same text for every packet of the corpus
(under the tolerances each needs, 2005 packets included), for simulated packets, and for arbitrary factors; and
None, so that Python formats it, for whatever C does not handle exactly."""
from __future__ import annotations

import random
import sys
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingot.monitoring import storage
from ingot.monitoring.hj212 import HJ212Error, TOLERANCES, codec, decode
from ingot.monitoring.hj212._fastpath import copy_escape, measurement_lines
from ingot.monitoring.simulator import DeviceSpec, VirtualDevice

from tests.monitoring.test_hj212_corpus import _corpus

WIDTH = len(storage.VALUE_FIELDS)
HEAD, TAIL, STAMP = "17\t", "\tminute\t2024-01-05T02:10:00+00:00\t", "2024-01-05T02:10:03.123456+00:00"


def python_lines(packet) -> str:
    return "\n".join(storage._factor_lines(packet, HEAD, TAIL, STAMP))


def compiled_lines(packet):
    return measurement_lines(packet.pollutants, HEAD, TAIL, STAMP, storage._SUFFIX_COLUMN, WIDTH)


def reference_escape(text: str) -> str:
    return text.translate(storage._COPY_ESCAPES).replace("\x00", "")


def test_every_decodable_corpus_packet_formats_alike():
    formatted = 0
    for _source, line in _corpus():
        try:
            packet = decode(line, TOLERANCES)
        except HJ212Error:
            continue
        lines = compiled_lines(packet)
        assert lines == python_lines(packet), line
        formatted += bool(lines)
        assert copy_escape(line) == reference_escape(line)
    assert formatted >= 10  # the corpus's data uploads, not only its commands


def test_simulated_packets_format_alike_and_every_factor_has_its_line():
    device = VirtualDevice(DeviceSpec(mn="010000A8900016F000169DC0", split_hourly=False), random.Random(5),
                           datetime(2024, 1, 5, 2, 0, tzinfo=timezone.utc))
    checked = 0
    for _ in range(70):
        for raw, ok in device.packets_for_tick():
            packet = decode(raw.rstrip(b"\r\n"))
            if packet.cn not in storage.CN_KIND:
                continue
            lines = compiled_lines(packet)
            assert lines is not None and lines == python_lines(packet)
            assert len(lines.split("\n")) == sum(1 for entry in packet.pollutants.values()
                                                 if set(entry.values) & set(storage.SUFFIX_FIELD))
            checked += 1
    assert checked > 100


values = st.builds(Decimal, st.from_regex(r"-?[0-9]{1,8}(\.[0-9]{1,6})?", fullmatch=True))
suffixes = st.sampled_from([*storage.SUFFIX_FIELD, "Flag", "SampleTime", "EFlag", "Info"])


@st.composite
def factors(draw):
    pollutants = {}
    for code in draw(st.lists(st.from_regex(r"a[0-9]{5}", fullmatch=True), max_size=8, unique=True)):
        chosen = draw(st.dictionaries(suffixes, values, max_size=6))
        flag = draw(st.one_of(st.none(), st.sampled_from("NFMSDCTB"), st.just("")))
        pollutants[code] = codec.PollutantValues(code, chosen, flag)
    return pollutants


class Packetish:
    def __init__(self, pollutants):
        self.pollutants = pollutants


@settings(max_examples=400, deadline=None)
@given(factors())
def test_arbitrary_factors_format_alike(pollutants):
    packet = Packetish(pollutants)
    assert compiled_lines(packet) == python_lines(packet)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=60) | st.text(max_size=20))
def test_copy_escape_is_the_translation_or_declines(text):
    escaped = copy_escape(text)
    if max(map(ord, text), default=0) > 0xFF:
        assert escaped is None
    else:
        assert escaped == reference_escape(text)


def test_what_it_declines_python_formats():
    odd = {"a21026": codec.PollutantValues("a21026", {"Avg": Decimal("1.5")}, "N"),
           "a2\t026": codec.PollutantValues("a2\t026", {"Avg": Decimal("2")}, None)}
    assert measurement_lines(odd, HEAD, TAIL, STAMP, storage._SUFFIX_COLUMN, WIDTH) is None  # a TAB in a code
    assert python_lines(Packetish(odd)).split("\n")[1].startswith("17\ta2\\t026\t")
    wide = {"a21026": codec.PollutantValues("a21026", {"Avg": Decimal("1.5")}, "N")}
    assert measurement_lines(wide, HEAD, TAIL, "时间", storage._SUFFIX_COLUMN, WIDTH) is None
    assert measurement_lines({"a21026": object()}, HEAD, TAIL, STAMP, storage._SUFFIX_COLUMN, WIDTH) is None
    with pytest.raises(ValueError):
        measurement_lines(wide, HEAD, TAIL, STAMP, storage._SUFFIX_COLUMN, 0)
    assert measurement_lines({}, HEAD, TAIL, STAMP, storage._SUFFIX_COLUMN, WIDTH) == ""


def test_no_references_leak():
    """The factors, their values and flags are back at their reference counts after the compiled formatting, when
    it formats and when it declines part-way (a value whose text it cannot take)."""
    class Odd(Decimal):
        def __str__(self):
            return "1\t5"

    flag, value, odd = "N", Decimal("3.25"), Odd("1.5")
    entries = {"a21026": codec.PollutantValues("a21026", {"Avg": value, "Max": value}, flag),
               "a21002": codec.PollutantValues("a21002", {"Rtd": value}, None)}
    declined = {**entries, "a34013": codec.PollutantValues("a34013", {"Avg": value, "Min": odd}, flag)}
    watched = [flag, value, odd, *entries.values()]
    for pollutants in (entries, declined):  # warm up
        measurement_lines(pollutants, HEAD, TAIL, STAMP, storage._SUFFIX_COLUMN, WIDTH)
    before = [sys.getrefcount(item) for item in watched]
    for _ in range(50):
        assert measurement_lines(entries, HEAD, TAIL, STAMP, storage._SUFFIX_COLUMN, WIDTH)
        assert measurement_lines(declined, HEAD, TAIL, STAMP, storage._SUFFIX_COLUMN, WIDTH) is None
    assert [sys.getrefcount(item) for item in watched] == before
