"""HJ 212-2017 / HJ/T 212-2005 packet codec. Pure: no I/O, no clock.

Strict by default. Each deviation seen in real devices is accepted only when its tolerance is named in the
`tolerate` set passed to `decode` (see TOLERANCES). Every rejection is an `HJ212Error` with a stable reason code.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Callable, Iterable

from ingot.core.errors import InvalidInput
from ingot.core.timeutil import SHANGHAI
try:
    from ingot.monitoring.hj212 import _fastpath  # compiled from _fastpath.c by `pip install -e .`; see setup.py
except ImportError as missing:  # pragma: no cover - a checkout that was never installed
    raise ImportError("the HJ 212 codec's compiled part is not built: run `make test` (or `pip install -e .`)") \
        from missing
from ingot.monitoring.hj212.codes import (
    COMMAND_CODES, DATA_FLAGS, NOISE_CODES, NUMERIC_SUFFIXES, OLD_TO_2017, RESERVED_COMMAND_RANGES,
    SYSTEM_CODES, TEXT_SUFFIXES,
)

MAX_SEGMENT = 1024  # 6.3.1 table 2
MAX_CP = 950        # 6.3.2 table 3

TOLERANCES: dict[str, str] = {
    "lowercase_crc": "CRC written in lower-case hex digits",
    "modbus_crc": "CRC computed as CRC-16/MODBUS and sent low byte first",
    "length_includes_crc": "declared length counts the CRC and CR LF (data segment + 6)",
    "oversize": "data segment longer than 1024 bytes",
    "missing_qn_flag": "QN or Flag missing from a packet that is not HJ/T 212-2005",
    "stray_spaces": "spaces around separators, keys and values",
    "free_form_mn": "MN that is not 24 upper-case hex digits (or 14 characters under HJ/T 212-2005)",
    "long_password": "PW longer than 6 characters",
    "nonstandard_codes": "pollutant codes that are neither appendix B codes nor HJ/T 212-2005 codes",
    "nonstandard_system_code": "ST value missing from table 5",
    "datatime_millis": "DataTime with milliseconds (17 digits)",
    "sloppy_header": "empty header items, a stray comma before a header key, or header keys in the wrong case",
    "bare_flag_item": "a data flag written as its own CP item (Flag=N) instead of code-Flag",
    "unknown_fields": "value suffixes the standard does not define (e.g. -ValidNum)",
}


_TOLERANCE_NAMES = frozenset(TOLERANCES)


class HJ212Error(InvalidInput):
    """A packet the codec refuses; `code` is a stable reason string, messages in zh-CN and English."""

    def __init__(self, code: str, message_zh: str, message_en: str, *, field: str | None = None):
        super().__init__(message_zh, message_en, field=field, code=code)

    def as_json(self) -> dict:
        return {"ok": False, "reason": self.code, "message": self.message_zh, "message_en": self.message_en,
                **({"field": self.field} if self.field else {})}


def _unknown_tolerance(names: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(names)
    unknown = chosen - TOLERANCES.keys()
    if unknown:
        raise HJ212Error("unknown_tolerance", f"未知的容错选项：{', '.join(sorted(unknown))}",
                         f"unknown tolerance option(s): {', '.join(sorted(unknown))}")
    return chosen


# --- CRC (appendix A) -------------------------------------------------------------------------------------------
# Appendix A shifts the register right by eight, XORs the byte into the low byte, then runs eight rounds of
# shift-and-XOR 0xA001; CRC-16/MODBUS (the modbus_crc tolerance) XORs the byte into the register without the shift.
# Both are computed in C (_fastpath.c, which explains how it folds appendix A's CRC eight bytes at a time): in
# Python the CRC alone cost a quarter of the decode. tests/monitoring/test_hj212_codec.py and test_hj212_compiled.py
# check crc_hj212 against the appendix's bit-by-bit C code and the CRCs in the corpus.

crc_hj212: Callable[[bytes], int] = _fastpath.crc_hj212
crc_modbus: Callable[[bytes], int] = _fastpath.crc_modbus


# --- decoded packet ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class PollutantValues:
    """One factor's items in CP: numeric values by suffix (Decimal), its data flag and text fields."""

    code: str
    values: dict[str, Decimal] = field(default_factory=dict)
    flag: str | None = None
    eflag: str | None = None
    sample_time: datetime | None = None
    texts: dict[str, str] = field(default_factory=dict)  # Info, SN and (tolerated) unknown suffixes
    original_code: str | None = None  # the HJ/T 212-2005 code it was mapped from

    def as_json(self) -> dict:
        out: dict = {"code": self.code, "values": {k: str(v) for k, v in self.values.items()}}
        if self.flag is not None:
            out["flag"] = self.flag
        if self.eflag is not None:
            out["eflag"] = self.eflag
        if self.sample_time is not None:
            out["sample_time"] = self.sample_time.isoformat()
        if self.texts:
            out["texts"] = dict(self.texts)
        if self.original_code is not None:
            out["original_code"] = self.original_code
        return out


@dataclass
class Packet:
    st: str
    cn: str
    pw: str
    mn: str
    edition: str = "2017"          # "2017" or "2005"
    version: int = 1               # Flag bits V5..V0 (0 = HJ/T 212-2005, 1 = HJ 212-2017, 2 = newer value)
    qn: str | None = None
    flag: int | None = None
    pnum: int | None = None
    pno: int | None = None
    data_time: datetime | None = None
    params: dict[str, str] = field(default_factory=dict)  # CP items that are not factor values, e.g. QnRtn
    pollutants: dict[str, PollutantValues] = field(default_factory=dict)
    tolerated: tuple[str, ...] = ()  # tolerances this packet actually needed

    @property
    def needs_answer(self) -> bool:
        return bool(self.flag is not None and self.flag & 1)

    @property
    def is_split(self) -> bool:
        return self.pnum is not None

    def as_json(self) -> dict:
        out = {"ok": True, "edition": self.edition, "version": self.version, "qn": self.qn, "st": self.st,
               "system": SYSTEM_CODES.get(self.st), "cn": self.cn, "command": COMMAND_CODES.get(self.cn),
               "pw": self.pw, "mn": self.mn, "flag": self.flag, "needs_answer": self.needs_answer,
               "pnum": self.pnum, "pno": self.pno,
               "data_time": self.data_time.isoformat() if self.data_time else None,
               "params": dict(self.params),
               "pollutants": [p.as_json() for p in self.pollutants.values()]}
        if self.tolerated:
            out["tolerated"] = list(self.tolerated)
        return out


# --- decoding ---------------------------------------------------------------------------------------------------

_HEX_UPPER = frozenset("0123456789ABCDEF")
_HEX_LOWER = frozenset("0123456789abcdef")
_ALNUM = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_FREE_MN = _ALNUM | frozenset("_-")
_NUMBER_CHARS = frozenset("0123456789.-+")
_HEADER_KEYS = ("QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO")
_HEADER_BY_UPPER = {key.upper(): key for key in _HEADER_KEYS}


def _fail(code: str, zh: str, en: str, field: str | None = None) -> HJ212Error:
    return HJ212Error(code, zh, en, field=field)


def _digits(text: str) -> bool:
    return text.isdigit() and text.isascii()


def parse_time(text: str, field_name: str, allow_millis: bool = False) -> datetime:
    """YYYYMMDDhhmmss (or with zzz milliseconds where allowed) as Beijing time, timezone-aware."""
    if not _digits(text) or len(text) not in ((14, 17) if allow_millis else (14,)):
        raise _fail("time_format", f"{field_name} 须为 14 位数字 YYYYMMDDhhmmss：{text[:40]!r}",
                    f"{field_name} must be 14 digits YYYYMMDDhhmmss: {text[:40]!r}", field_name)
    try:
        return datetime(int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]),
                        int(text[12:14]), int(text[14:17]) * 1000 if len(text) == 17 else 0, tzinfo=SHANGHAI)
    except ValueError:
        raise _fail("time_invalid", f"{field_name} 不是有效的日期时间：{text}",
                    f"{field_name} is not a valid date and time: {text}", field_name) from None


def parse_number(text: str, field_name: str) -> Decimal:
    """N14.2-style number: optional sign, digits with at most one decimal point; at most 18 characters."""
    body = text[1:] if text[:1] in ("-", "+") and text else text
    if len(text) > 18 or not body.replace(".", "", 1).isdigit() or not body.isascii():
        raise _fail("value_format", f"{field_name} 的数值格式错误：{text[:40]!r}",
                    f"{field_name} has a malformed number: {text[:40]!r}", field_name)
    return Decimal(text)


def _split_frame(line: bytes, tolerate: frozenset[str], used: list[str]) -> bytes:
    """Check ## + length + segment + CRC (+ CR LF) and return the segment bytes."""
    if line.endswith(b"\r\n"):
        line = line[:-2]
    if line[:2] != b"##":
        raise _fail("frame_header", "包头必须为 ##", "packet must start with ##")
    declared_text = line[2:6]
    if len(declared_text) < 4 or not declared_text.isdigit():
        raise _fail("length_format", "数据段长度须为 4 位十进制数字", "data segment length must be 4 decimal digits")
    declared = int(declared_text)
    segment, crc_text = line[6:-4], line[-4:]
    if len(line) < 10:
        raise _fail("frame_truncated", "数据包不完整（缺少数据段或 CRC）", "packet is truncated (no segment or CRC)")
    if declared != len(segment):
        if "length_includes_crc" in tolerate and declared == len(segment) + 6:
            used.append("length_includes_crc")
        else:
            raise _fail("length_mismatch", f"声明的数据段长度 {declared} 与实际长度 {len(segment)} 不符",
                        f"declared data segment length {declared} differs from the actual {len(segment)}")
    try:
        crc_str = crc_text.decode("ascii")
    except UnicodeDecodeError:
        crc_str = ""
    if len(crc_str) != 4 or not set(crc_str) <= (_HEX_UPPER | _HEX_LOWER):
        raise _fail("crc_format", "CRC 须为 4 位十六进制数", "CRC must be 4 hexadecimal digits")
    sent = int(crc_str, 16)
    if sent != crc_hj212(segment):
        modbus = crc_modbus(segment)
        if "modbus_crc" in tolerate and sent == ((modbus & 0xFF) << 8 | modbus >> 8):
            used.append("modbus_crc")
        else:
            raise _fail("crc_mismatch", f"CRC 校验错误：收到 {crc_str}，计算得 {crc_hj212(segment):04X}",
                        f"CRC mismatch: received {crc_str}, computed {crc_hj212(segment):04X}")
    if not set(crc_str) <= _HEX_UPPER:
        if "lowercase_crc" not in tolerate:
            raise _fail("crc_lowercase", "CRC 须用大写十六进制数字", "CRC must use upper-case hex digits")
        used.append("lowercase_crc")
    if len(segment) > MAX_SEGMENT:
        if "oversize" not in tolerate:
            raise _fail("segment_too_long", f"数据段长度 {len(segment)} 超过 1024",
                        f"data segment of {len(segment)} bytes exceeds 1024")
        used.append("oversize")
    return segment


def decode(packet: bytes | str, tolerate: Iterable[str] = ()) -> Packet:
    """Decode one framed packet (## … CRC, CR LF optional). Raises HJ212Error with a reason code."""
    if tolerate == () or tolerate is _NO_TOLERANCE:
        allowed = _NO_TOLERANCE
    elif isinstance(tolerate, frozenset) and tolerate <= _TOLERANCE_NAMES:
        allowed = tolerate
    else:
        allowed = _unknown_tolerance(tolerate)
    if type(packet) is bytes and "stray_spaces" not in allowed:
        # (stray_spaces would strip spaces around parameter values, which the fast path keeps)
        packet_out = _decode_fast(packet)
        if packet_out is not None:
            return packet_out
    return _decode_general(packet, allowed)


def _decode_general(packet: bytes | str, allowed: frozenset[str]) -> Packet:
    """Every rule and every tolerance, one by one; the reference that the fast path below must agree with."""
    if isinstance(packet, str):
        try:
            packet = packet.encode("utf-8")
        except UnicodeEncodeError:
            raise _fail("not_utf8", "数据包不是有效的 UTF-8", "packet is not valid UTF-8") from None
    used: list[str] = []
    segment_bytes = _split_frame(packet, allowed, used)
    try:
        segment = segment_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail("not_utf8", "数据段不是有效的 UTF-8", "data segment is not valid UTF-8") from None
    return decode_segment(segment, allowed, used)


# --- the fast path ---------------------------------------------------------------------------------------------
# Most packets are strictly well-formed 2017 uploads with the header fields in the standard's order. For those the
# compiled hot path (_fastpath.c) checks the frame, the CRC, the header and every CP item in one pass over the bytes
# and builds the Packet directly. It accepts only packets the general path accepts with no tolerance, and builds
# the same Packet; anything else (any doubt, any error) returns None and the general path decides, so every
# rejection and every tolerance keeps its reason and its message, written once, above. The code tables and the
# classes it builds are handed to it here, from codes.py and this module. tests/monitoring/test_hj212_fast_path.py
# and test_hj212_compiled.py check the two agree, on valid packets and on malformed ones.

_NO_TOLERANCE: frozenset[str] = frozenset()
_fastpath.configure(Packet, tuple(item.name for item in dataclasses.fields(Packet)), PollutantValues,
                    tuple(item.name for item in dataclasses.fields(PollutantValues)), Decimal, SHANGHAI, SYSTEM_CODES,
                    COMMAND_CODES, DATA_FLAGS, NUMERIC_SUFFIXES)
_decode_fast: Callable[[bytes], Packet | None] = _fastpath.decode_strict


def decode_segment(segment: str, tolerate: frozenset[str] = frozenset(), used: list[str] | None = None) -> Packet:
    """Decode a data segment (the text between the length and the CRC)."""
    used = [] if used is None else used
    start = segment.find("CP=&&")
    if start < 0:
        raise _fail("cp_missing", "数据段缺少 CP=&&…&&", "data segment lacks CP=&&…&&", "CP")
    if not segment.endswith("&&") or len(segment) < start + 7:
        raise _fail("cp_unterminated", "CP 须以 && 结尾", "CP must end with &&", "CP")
    cp_text = segment[start + 5:-2]
    if len(segment) - start > MAX_CP and "oversize" not in tolerate:
        raise _fail("cp_too_long", "CP 超过 950 个字符", "CP exceeds 950 characters", "CP")
    header = _parse_header(segment[:start], tolerate, used)
    packet = _build_header(header, tolerate, used)
    _parse_cp(cp_text, packet, tolerate, used)
    if used:
        packet.tolerated = tuple(dict.fromkeys(used))
    return packet


def _parse_header(text: str, tolerate: frozenset[str], used: list[str]) -> dict[str, str]:
    if text and not text.endswith(";"):
        raise _fail("header_format", "CP 前须以 ; 分隔", "the field before CP must end with ;")
    fields: dict[str, str] = {}
    for item in text[:-1].split(";") if text else ():
        key, sep, value = item.partition("=")
        canonical = key
        if key not in _HEADER_KEYS or not sep:
            sloppy = key.strip().lstrip(",").strip()
            if "sloppy_header" in tolerate and not item.strip():
                used.append("sloppy_header")
                continue
            if "stray_spaces" in tolerate and sloppy in _HEADER_KEYS and sloppy == key.strip():
                used.append("stray_spaces")
                canonical = sloppy
            elif "sloppy_header" in tolerate and sloppy.upper() in _HEADER_BY_UPPER:
                used.append("sloppy_header")
                canonical = _HEADER_BY_UPPER[sloppy.upper()]
            elif not sep:
                raise _fail("header_item", f"包头字段缺少 =：{item[:40]!r}", f"header item lacks '=': {item[:40]!r}")
            else:
                raise _fail("header_unknown", f"未知的包头字段：{key[:20]!r}", f"unknown header field: {key[:20]!r}")
        if canonical in fields:
            raise _fail("header_duplicate", f"包头字段重复：{canonical}", f"duplicate header field: {canonical}",
                        canonical)
        if value != value.strip() and "stray_spaces" in tolerate:
            used.append("stray_spaces")
            value = value.strip()
        fields[canonical] = value
    return fields


def _build_header(fields: dict[str, str], tolerate: frozenset[str], used: list[str]) -> Packet:
    for required in ("ST", "CN", "PW", "MN"):
        if required not in fields:
            raise _fail(f"{required.lower()}_missing", f"缺少 {required} 字段", f"field {required} is missing", required)
    st, cn, pw, mn = fields["ST"], fields["CN"], fields["PW"], fields["MN"]
    qn, flag_text = fields.get("QN"), fields.get("Flag")

    flag = None
    if flag_text is not None:
        if not _digits(flag_text) or len(flag_text) > 3 or int(flag_text) > 255:
            raise _fail("flag_format", f"Flag 须为 0–255 的整数：{flag_text[:10]!r}",
                        f"Flag must be an integer 0–255: {flag_text[:10]!r}", "Flag")
        flag = int(flag_text)
        version = flag >> 2
        if version > 2:
            raise _fail("version_unsupported", f"Flag 的版本号 {version} 不受支持（支持 0=HJ/T 212-2005、1=HJ 212-2017、2=其后修订值）",
                        f"Flag version {version} is not supported (0 = HJ/T 212-2005, 1 = HJ 212-2017, 2 = the newer value)",
                        "Flag")
        edition = "2005" if version == 0 else "2017"
    else:
        version, edition = 0, "2005"
    # HJ/T 212-2005 has no Flag version bits and a 14-character MN; a Flag-less packet with another MN is a
    # 2017 packet that left out its Flag.
    if edition == "2005" and flag is None and len(mn) != 14:
        if "missing_qn_flag" not in tolerate:
            raise _fail("flag_missing", "缺少 Flag 字段（非 HJ/T 212-2005 数据包）",
                        "field Flag is missing (not an HJ/T 212-2005 packet)", "Flag")
        used.append("missing_qn_flag")
    if qn is None and edition == "2017":
        if "missing_qn_flag" not in tolerate:
            raise _fail("qn_missing", "缺少 QN 字段", "field QN is missing", "QN")
        used.append("missing_qn_flag")
    if qn is not None:
        if not _digits(qn) or len(qn) != 17:
            raise _fail("qn_format", f"QN 须为 17 位数字 YYYYMMDDhhmmsszzz：{qn[:30]!r}",
                        f"QN must be 17 digits YYYYMMDDhhmmsszzz: {qn[:30]!r}", "QN")
        parse_time(qn, "QN", allow_millis=True)

    if len(st) != 2 or not _digits(st):
        if "nonstandard_system_code" in tolerate and 1 <= len(st) <= 3 and _digits(st):
            used.append("nonstandard_system_code")
        else:
            raise _fail("st_format", f"ST 须为 2 位数字：{st[:10]!r}", f"ST must be 2 digits: {st[:10]!r}", "ST")
    elif st not in SYSTEM_CODES:
        if "nonstandard_system_code" not in tolerate:
            raise _fail("st_unknown", f"ST={st} 不在系统编码表中", f"ST={st} is not in the system code table", "ST")
        used.append("nonstandard_system_code")

    if len(cn) != 4 or not _digits(cn):
        raise _fail("cn_format", f"CN 须为 4 位数字：{cn[:10]!r}", f"CN must be 4 digits: {cn[:10]!r}", "CN")
    if cn not in COMMAND_CODES and not any(low <= int(cn) <= high for low, high in RESERVED_COMMAND_RANGES):
        raise _fail("cn_unknown", f"CN={cn} 不在命令编码表中", f"CN={cn} is not in the command code table", "CN")

    if not pw or len(pw) > 6 or not set(pw) <= _ALNUM:
        if "long_password" in tolerate and pw and len(pw) <= 32 and set(pw) <= _ALNUM:
            used.append("long_password")
        else:
            raise _fail("pw_format", "PW 须为 1–6 位字母或数字", "PW must be 1–6 letters or digits", "PW")

    mn_ok = (len(mn) == 14 and set(mn) <= _ALNUM) if edition == "2005" else (len(mn) == 24 and set(mn) <= _HEX_UPPER)
    if not mn_ok:
        if "free_form_mn" in tolerate and 1 <= len(mn) <= 32 and set(mn) <= _FREE_MN:
            used.append("free_form_mn")
        else:
            expected = "14 位字母数字" if edition == "2005" else "24 位大写十六进制字符"
            expected_en = "14 letters/digits" if edition == "2005" else "24 upper-case hex characters"
            raise _fail("mn_format", f"MN 须为 {expected}：{mn[:40]!r}", f"MN must be {expected_en}: {mn[:40]!r}", "MN")

    pnum = pno = None
    split_flag = flag is not None and bool(flag & 2)
    if "PNUM" in fields or "PNO" in fields:
        if "PNUM" not in fields or "PNO" not in fields:
            raise _fail("split_incomplete", "PNUM 与 PNO 须同时出现", "PNUM and PNO must appear together", "PNUM")
        for name in ("PNUM", "PNO"):
            text = fields[name]
            if not _digits(text) or len(text) > 4 or int(text) < 1:
                raise _fail(f"{name.lower()}_format", f"{name} 须为 1–9999 的整数", f"{name} must be an integer 1–9999",
                            name)
        pnum, pno = int(fields["PNUM"]), int(fields["PNO"])
        if pno > pnum:
            raise _fail("pno_range", f"PNO {pno} 大于 PNUM {pnum}", f"PNO {pno} exceeds PNUM {pnum}", "PNO")
        if flag is not None and not split_flag:
            raise _fail("split_flag", "含 PNUM/PNO 但 Flag 的拆分位 D 为 0", "PNUM/PNO present but Flag's split bit D is 0",
                        "Flag")
    elif split_flag:
        raise _fail("split_incomplete", "Flag 的拆分位 D 为 1 但缺少 PNUM/PNO", "Flag's split bit D is 1 but PNUM/PNO are missing",
                    "PNUM")
    return Packet(st=st, cn=cn, pw=pw, mn=mn, edition=edition, version=version, qn=qn, flag=flag, pnum=pnum, pno=pno)


_STANDARD_CODES: set[str] = set()  # codes already seen to have an appendix B form; bounded below


def _pollutant_code(code: str, packet: Packet, tolerate: frozenset[str], used: list[str]) -> tuple[str, str | None]:
    """The 2017 code for a factor code, with the 2005 original when it was mapped."""
    if code in _STANDARD_CODES:
        return code, None
    if len(code) == 6 and code[0].isalpha() and code[0].islower() and _digits(code[1:]):
        if len(_STANDARD_CODES) < 4096:
            _STANDARD_CODES.add(code)
        return code, None
    if len(code) == 6 and code[0].isalpha() and code[0].islower() and _digits(code[1:]):
        return code, None
    if code in NOISE_CODES or (code.startswith("SB") and _digits(code[2:]) and len(code) > 2):
        return code, None
    if len(code) == 6 and code[0] == "i" and _digits(code[1:]):
        return code, None
    if packet.edition == "2005" and code in OLD_TO_2017:
        return OLD_TO_2017[code], code
    if "nonstandard_codes" in tolerate and code and set(code) <= _FREE_MN:
        used.append("nonstandard_codes")
        return code, None
    raise _fail("pollutant_code", f"污染物编码不符合附录 B：{code[:20]!r}", f"factor code not per appendix B: {code[:20]!r}",
                code[:20])


def _parse_cp(text: str, packet: Packet, tolerate: frozenset[str], used: list[str]) -> None:
    if not text:
        return
    spaces = "stray_spaces" in tolerate
    pollutants = packet.pollutants
    params = packet.params
    last_code = None
    entry = None
    standard_codes = _STANDARD_CODES
    numeric = NUMERIC_SUFFIXES
    for group in text.split(";"):
        if not group:
            raise _fail("cp_item", "CP 中有空的项目（连续的 ; 或末尾的 ;）", "CP has an empty item (';;' or a trailing ';')", "CP")
        for item in group.split(","):
            key, sep, value = item.partition("=")
            if spaces and (key != key.strip() or value != value.strip()):
                used.append("stray_spaces")
                key, value = key.strip(), value.strip()
            if not sep or not key:
                raise _fail("cp_item", f"CP 项目须为 名称=值：{item[:40]!r}", f"CP item must be name=value: {item[:40]!r}", "CP")
            code, dash, suffix = key.rpartition("-")
            if not dash:
                if key == "Flag" and "bare_flag_item" in tolerate and pollutants:
                    used.append("bare_flag_item")
                    last = next(reversed(pollutants.values()))
                    _set_flag(last, value, key)
                    continue
                if key == "DataTime":
                    packet.data_time = parse_time(value, "DataTime", "datatime_millis" in tolerate)
                    if len(value) == 17:
                        used.append("datatime_millis")
                if key in params:
                    raise _fail("cp_duplicate", f"CP 字段重复：{key[:20]}", f"duplicate CP field: {key[:20]}", key[:20])
                params[key] = value
                continue
            # the items of one factor come together, so the previous item's entry is usually the right one
            if code != last_code:
                if code in standard_codes:
                    mapped, original = code, None
                else:
                    mapped, original = _pollutant_code(code, packet, tolerate, used)
                entry = pollutants.get(mapped)
                if entry is None:
                    entry = pollutants[mapped] = PollutantValues(mapped, original_code=original)
                last_code = code
            if suffix in numeric:
                values = entry.values
                if suffix in values:
                    raise _fail("cp_duplicate", f"CP 字段重复：{key[:30]}", f"duplicate CP field: {key[:30]}", key[:30])
                # parse_number's checks, inlined for the common case: the hot path of decoding
                body = value[1:] if value[:1] == "-" else value
                if len(value) <= 18 and body.replace(".", "", 1).isdigit() and body.isascii():
                    values[suffix] = Decimal(value)
                else:
                    values[suffix] = parse_number(value, key)
            elif suffix == "Flag":
                _set_flag(entry, value, key)
            elif suffix == "EFlag":
                if not value or len(value) > 4 or not set(value) <= _ALNUM:
                    raise _fail("eflag_format", f"{key} 须为 1–4 位字母或数字", f"{key} must be 1–4 letters or digits", key)
                entry.eflag = value
            elif suffix == "SampleTime":
                entry.sample_time = parse_time(value, key)
            elif suffix in TEXT_SUFFIXES:
                entry.texts[suffix] = value
            elif "unknown_fields" in tolerate and suffix and set(suffix) <= _ALNUM:
                used.append("unknown_fields")
                entry.texts[suffix] = value
            else:
                raise _fail("field_suffix", f"未定义的字段后缀：{suffix[:20]!r}", f"undefined field suffix: {suffix[:20]!r}",
                            key[:30])


def _set_flag(entry: PollutantValues, value: str, key: str) -> None:
    if value not in DATA_FLAGS:
        raise _fail("data_flag", f"{key} 的数据标记须为 N/F/M/S/D/C/T/B 之一：{value[:10]!r}",
                    f"{key} data flag must be one of N F M S D C T B: {value[:10]!r}", key)
    if entry.flag is not None:
        raise _fail("cp_duplicate", f"CP 字段重复：{key[:30]}", f"duplicate CP field: {key[:30]}", key[:30])
    entry.flag = value


# --- encoding ---------------------------------------------------------------------------------------------------


def frame(segment: str) -> bytes:
    """## + 4-digit byte length + segment + appendix-A CRC + CR LF."""
    body = segment.encode("utf-8")
    if len(body) > 9999:
        raise _fail("segment_too_long", "数据段超过 9999 字节，无法成帧", "data segment over 9999 bytes cannot be framed")
    return b"##%04d%s%04X\r\n" % (len(body), body, crc_hj212(body))


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: HJ 212 times are Beijing time and must carry a zone")
    return moment.astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S")


def format_qn(moment: datetime) -> str:
    local = moment.astimezone(SHANGHAI)
    return local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}"


def build_cp(packet: Packet) -> str:
    items: list[str] = []
    if packet.data_time is not None:
        items.append("DataTime=" + format_time(packet.data_time))
    items.extend(f"{key}={value}" for key, value in packet.params.items() if key != "DataTime")
    for entry in packet.pollutants.values():
        code = entry.original_code if packet.edition == "2005" and entry.original_code else entry.code
        parts = [f"{code}-{suffix}={value}" for suffix, value in entry.values.items()]
        if entry.sample_time is not None:
            parts.append(f"{code}-SampleTime={format_time(entry.sample_time)}")
        parts.extend(f"{code}-{suffix}={value}" for suffix, value in entry.texts.items())
        if entry.flag is not None:
            parts.append(f"{code}-Flag={entry.flag}")
        if entry.eflag is not None:
            parts.append(f"{code}-EFlag={entry.eflag}")
        if parts:
            items.append(",".join(parts))
    return "CP=&&" + ";".join(items) + "&&"


def encode_segment(packet: Packet) -> str:
    head = []
    if packet.qn is not None:
        head.append(f"QN={packet.qn}")
    head += [f"ST={packet.st}", f"CN={packet.cn}", f"PW={packet.pw}", f"MN={packet.mn}"]
    if packet.flag is not None:
        head.append(f"Flag={packet.flag}")
    if packet.pnum is not None:
        head += [f"PNUM={packet.pnum}", f"PNO={packet.pno}"]
    return ";".join(head) + ";" + build_cp(packet)


def encode(packet: Packet) -> bytes:
    """The framed bytes of a packet; decode(encode(p)) gives p back (tolerated aside)."""
    return frame(encode_segment(packet))


def flag_for(*, version: int = 1, split: bool = False, answer: bool = False) -> int:
    return (version << 2) | (2 if split else 0) | (1 if answer else 0)


# --- split packets ----------------------------------------------------------------------------------------------


class Reassembler:
    """Collects the PNO parts of split packets (same MN, CN and QN/DataTime) and returns the whole packet once
    all PNUM parts are in. Keeps at most `max_pending` incomplete groups, dropping the oldest."""

    def __init__(self, max_pending: int = 1000):
        self.max_pending = max_pending
        self._pending: dict[tuple, dict[int, Packet]] = {}

    def add(self, packet: Packet) -> Packet | None:
        if packet.pnum is None:
            return packet
        key = (packet.mn, packet.cn, packet.qn, packet.data_time, packet.pnum)
        parts = self._pending.setdefault(key, {})
        parts[packet.pno] = packet
        if len(parts) < packet.pnum:
            while len(self._pending) > self.max_pending:
                self._pending.pop(next(iter(self._pending)))
            return None
        del self._pending[key]
        ordered = [parts[number] for number in sorted(parts)]
        first = ordered[0]
        whole = Packet(st=first.st, cn=first.cn, pw=first.pw, mn=first.mn, edition=first.edition,
                       version=first.version, qn=first.qn,
                       flag=None if first.flag is None else first.flag & ~2, data_time=first.data_time)
        for part in ordered:
            for name, value in part.params.items():
                whole.params.setdefault(name, value)
            for code, entry in part.pollutants.items():
                existing = whole.pollutants.get(code)
                if existing is None:
                    whole.pollutants[code] = entry
                else:
                    existing.values.update(entry.values)
                    existing.texts.update(entry.texts)
                    existing.flag = existing.flag or entry.flag
            whole.tolerated = tuple(dict.fromkeys(whole.tolerated + part.tolerated))
        return whole

    @property
    def pending(self) -> int:
        return len(self._pending)


# --- JSON form (the CLI's and the API's) ------------------------------------------------------------------------


def packet_from_json(data: object) -> Packet:
    """A Packet from the JSON form `Packet.as_json()` writes; values as strings or integers, never floats."""
    if not isinstance(data, dict):
        raise _fail("json_shape", "每个数据包须为 JSON 对象", "each packet must be a JSON object")

    def text(name: str, required: bool = True) -> str | None:
        value = data.get(name)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise _fail("json_field", f"字段 {name} 缺失或不是字符串", f"field {name} is missing or not a string", name)
        return str(value)

    def number(name: str, value: object) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise _fail("json_value", f"{name} 须为字符串或整数（不接受浮点数）", f"{name} must be a string or integer (no floats)",
                        name)
        return parse_number(str(value), name)

    flag = data.get("flag")
    if flag is not None and (isinstance(flag, bool) or not isinstance(flag, int)):
        raise _fail("json_field", "flag 须为整数", "flag must be an integer", "flag")
    pnum, pno = data.get("pnum"), data.get("pno")
    for name, value in (("pnum", pnum), ("pno", pno)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise _fail("json_field", f"{name} 须为整数", f"{name} must be an integer", name)
    edition = "2005" if flag is None or flag >> 2 == 0 else "2017"
    packet = Packet(st=text("st"), cn=text("cn"), pw=text("pw"), mn=text("mn"), qn=text("qn", False), flag=flag,
                    edition=edition, version=0 if flag is None else flag >> 2, pnum=pnum, pno=pno)
    data_time = data.get("data_time")
    if data_time is not None:
        try:
            moment = datetime.fromisoformat(str(data_time))
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise _fail("json_time", "data_time 须为带时区的 ISO 8601 时间", "data_time must be an ISO 8601 time with a zone",
                        "data_time")
        packet.data_time = moment.astimezone(SHANGHAI)
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise _fail("json_field", "params 须为对象", "params must be an object", "params")
    packet.params = {str(k): str(v) for k, v in params.items() if k != "DataTime"}
    pollutants = data.get("pollutants") or []
    if not isinstance(pollutants, list):
        raise _fail("json_field", "pollutants 须为数组", "pollutants must be an array", "pollutants")
    for item in pollutants:
        if not isinstance(item, dict) or not isinstance(item.get("code"), str):
            raise _fail("json_field", "每个污染物须为含 code 的对象", "each pollutant must be an object with a code", "pollutants")
        values = item.get("values") or {}
        if not isinstance(values, dict):
            raise _fail("json_field", "values 须为对象", "values must be an object", "values")
        entry = PollutantValues(item["code"], original_code=item.get("original_code"),
                                flag=item.get("flag"), eflag=item.get("eflag"))
        for suffix, value in values.items():
            if suffix not in NUMERIC_SUFFIXES:
                raise _fail("field_suffix", f"未定义的数值后缀：{suffix!r}", f"undefined value suffix: {suffix!r}", suffix)
            entry.values[suffix] = number(f"{item['code']}-{suffix}", value)
        if item.get("sample_time"):
            entry.sample_time = datetime.fromisoformat(str(item["sample_time"]))
        entry.texts = {str(k): str(v) for k, v in (item.get("texts") or {}).items()}
        packet.pollutants[entry.code] = entry
    return packet
