"""The corpus test: every packet of ../shared/corpus/hj212/samples.txt, positive ones decoded (with exactly the
tolerances named here), NEGATIVE ones rejected in strict mode with the named reason."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingot.monitoring.hj212 import HJ212Error, decode

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "hj212" / "samples.txt"

# (position among the corpus's packets, a fragment of its '# source:' line, tolerances it needs or None,
#  strict rejection reason or None)
EXPECTED = [
    (0, "tang0-0/HJ212-Pack", (), None),
    (1, "T212ParserTest.java", ("datatime_millis",), "time_format"),
    (2, "T212ParserTest.java", ("lowercase_crc",), "crc_lowercase"),
    (3, "alltobs-hj212 README.md | crc=7D00", ("lowercase_crc", "free_form_mn"), "crc_lowercase"),
    (4, "alltobs-hj212 README.md | crc=8C41",
     ("lowercase_crc", "missing_qn_flag", "free_form_mn", "datatime_millis", "nonstandard_codes"), "crc_lowercase"),
    (5, "IceCoffee.HJ212", ("long_password", "free_form_mn"), "pw_format"),
    (6, "guocay/hj212-protocol", ("lowercase_crc", "free_form_mn"), "crc_lowercase"),
    (7, "4-char codes", ("lowercase_crc", "free_form_mn", "nonstandard_codes"), "crc_lowercase"),
    (8, "3-char codes", ("free_form_mn", "nonstandard_codes"), "mn_format"),
    (9, "flash520/hj212", ("free_form_mn",), "mn_format"),
    (10, "SampleTime field", (), None),
    (11, "9011 request answer", (), None),
    (12, "2081 RestartTime", (), None),
    (13, "HJ212Interpreter README.md | crc=2800", (), None),
    (14, "ST=101", ("nonstandard_system_code", "nonstandard_codes"), "st_format"),
    (15, "3-digit old-style codes", ("nonstandard_codes",), "pollutant_code"),
    (16, "HJ/T212-2005 codes", (), None),
    (17, "ValidNum/TotalNum", ("unknown_fields",), "field_suffix"),
    (18, '"Flag=N" as its own item', ("free_form_mn", "bare_flag_item"), "mn_format"),
    (19, "MODBUS", None, "crc_mismatch"),
    (20, "CRC mismatch (README example)", None, "crc_mismatch"),
    (21, "deliberately wrong CRC", None, "crc_mismatch"),
    (22, "crc=1100", None, "crc_mismatch"),
    (23, "crc=F9C1", None, "crc_mismatch"),
    (24, "DataTime edited", None, "crc_mismatch"),
    (25, "closing && missing", None, "length_mismatch"),
    (26, "MainWindow.java", None, "length_mismatch"),
    (27, "ProcessWater212.java", None, "length_mismatch"),
    (28, "declared 481 actual 482", None, "length_mismatch"),
    (29, "crc=2A80", ("free_form_mn",), "mn_format"),
    (30, "crc=E981", ("free_form_mn",), "mn_format"),
    (31, "crc=AB41", ("oversize",), "segment_too_long"),
    (32, "crc=2940", ("sloppy_header", "nonstandard_codes"), "header_unknown"),
]

# Variants the corpus marks as accepted by an explicit tolerance even though strict mode rejects them.
VARIANT_TOLERANCES = {
    19: ("modbus_crc", "oversize", "nonstandard_codes"),
    26: ("length_includes_crc", "missing_qn_flag", "free_form_mn", "nonstandard_codes"),
    27: ("length_includes_crc", "missing_qn_flag", "free_form_mn", "nonstandard_codes"),
}


def _corpus() -> list[tuple[str, str]]:
    if not CORPUS.exists():
        pytest.skip(f"HJ 212 corpus not found at {CORPUS} (clone the repository with shared/ beside it)")
    packets, source = [], ""
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.startswith("# source:"):
            source = line
        elif line.startswith("##"):
            packets.append((source, line))
    return packets


def test_every_corpus_packet_is_listed():
    packets = _corpus()
    assert len(packets) == len(EXPECTED)
    for (source, _), (position, fragment, _, _) in zip(packets, EXPECTED):
        assert fragment in source, (position, source)
        assert ("NEGATIVE" in source) == (EXPECTED[position][2] is None), position


@pytest.mark.parametrize("position, fragment, tolerances, strict_reason", EXPECTED, ids=[str(e[0]) for e in EXPECTED])
def test_corpus_packet(position, fragment, tolerances, strict_reason):
    source, line = _corpus()[position]
    if strict_reason is None:
        packet = decode(line)
        assert packet.tolerated == ()
    else:
        with pytest.raises(HJ212Error) as rejected:
            decode(line)
        assert rejected.value.code == strict_reason
        assert rejected.value.message_zh and rejected.value.message_en
    if tolerances is not None:
        packet = decode(line, tolerances)
        assert set(packet.tolerated) == set(tolerances), "every named tolerance is actually needed"
        assert packet.mn and packet.cn
    elif position in VARIANT_TOLERANCES:
        packet = decode(line, VARIANT_TOLERANCES[position])
        assert set(packet.tolerated) == set(VARIANT_TOLERANCES[position])
    else:
        with pytest.raises(HJ212Error):
            decode(line, ("lowercase_crc", "modbus_crc", "oversize", "free_form_mn", "nonstandard_codes"))


def test_corpus_2005_codes_are_mapped_to_2017():
    _, line = _corpus()[16]
    packet = decode(line)
    assert packet.edition == "2005" and packet.flag is None and packet.qn == "20180315134456001"
    smoke = packet.pollutants["a34013"]
    assert smoke.original_code == "01" and str(smoke.values["Rtd"]) == "25.2100" and str(smoke.values["ZsRtd"]) == "63.6616"
    assert packet.pollutants["a21026"].original_code == "02" and packet.pollutants["a21002"].original_code == "03"
    assert packet.pollutants["a19001"].original_code == "S01" and packet.pollutants["a00000"].original_code == "B02"
    assert packet.data_time.isoformat() == "2018-03-15T13:44:00+08:00"


def test_corpus_appendix_example_fields():
    _, line = _corpus()[0]
    packet = decode(line)
    assert (packet.qn, packet.st, packet.cn, packet.pw, packet.mn, packet.flag) == (
        "20160801085857223", "32", "1062", "100000", "010000A8900016F000169DC0", 5)
    assert packet.needs_answer and packet.version == 1 and packet.params == {"RtdInterval": "30"}
