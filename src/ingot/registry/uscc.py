"""Unified social credit codes (统一社会信用代码), GB 32100-2015.

Layout of the 18 characters: registration-authority code (1), institution category (1), GB/T 2260 division
code of the registering authority (6), organisation code per GB 11714 — eight body characters and their own
check character (9), and the overall check character (1).
"""
from __future__ import annotations

from ingot.core.errors import InvalidInput

# The code's alphabet: digits and capital letters without I, O, Z, S and V, valued 0..30 in this order.
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {char: index for index, char in enumerate(ALPHABET)}
# Weight of position i is 3**i mod 31.
WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
AUTHORITY_CODES = "123456789ABCDEFGY"
# GB 11714 organisation code: digits and capital letters valued 0..35, weights for the eight body characters.
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def _org_value(char: str) -> int:
    return int(char) if char.isdigit() else ord(char) - ord("A") + 10


def organisation_check_character(body: str) -> str:
    remainder = 11 - sum(_org_value(c) * w for c, w in zip(body, _ORG_WEIGHTS)) % 11
    return {10: "X", 11: "0"}.get(remainder, str(remainder))


def check_character(first17: str) -> str:
    remainder = sum(_VALUE[c] * w for c, w in zip(first17, WEIGHTS)) % 31
    return ALPHABET[(31 - remainder) % 31]


def make_uscc(authority: str, category: str, division_code: str, organisation_body: str) -> str:
    """Assemble a valid code from its parts (the two check characters are computed)."""
    first17 = authority + category + division_code + organisation_body + organisation_check_character(organisation_body)
    return first17 + check_character(first17)


def _reject(reason_zh: str, reason_en: str, field: str) -> InvalidInput:
    return InvalidInput(f"{field}：统一社会信用代码无效——{reason_zh}", f"{field}: invalid unified social credit code — {reason_en}", field=field, code="invalid_uscc")


def validate_uscc(raw: str | None, field: str = "uscc") -> str:
    """Return the normalised code (upper case, trimmed) or raise a 422 saying exactly what is wrong."""
    code = (raw or "").strip().upper()
    if len(code) != 18:
        raise _reject(f"须为 18 位，实为 {len(code)} 位", f"must have 18 characters, has {len(code)}", field)
    bad = sorted({c for c in code if c not in _VALUE})
    if bad:
        raise _reject(
            f"含不允许的字符 {''.join(bad)}（不使用 I、O、Z、S、V）", f"contains characters not allowed: {''.join(bad)} (I, O, Z, S, V are never used)", field
        )
    if code[0] not in AUTHORITY_CODES:
        raise _reject(f"第 1 位登记管理部门代码“{code[0]}”无效", f"position 1, registration authority code '{code[0]}', is not valid", field)
    if not code[1].isdigit() or code[1] == "0":
        raise _reject(f"第 2 位机构类别代码“{code[1]}”无效", f"position 2, institution category '{code[1]}', must be a digit 1-9", field)
    if not code[2:8].isdigit():
        raise _reject(f"第 3–8 位须为 6 位数字行政区划代码，实为“{code[2:8]}”", f"positions 3-8 must be the 6-digit division code, got '{code[2:8]}'", field)
    expected_org = organisation_check_character(code[8:16])
    if code[16] != expected_org:
        raise _reject(
            f"第 17 位组织机构代码校验码应为“{expected_org}”，实为“{code[16]}”",
            f"position 17, the organisation code's GB 11714 check character, should be '{expected_org}', is '{code[16]}'",
            field,
        )
    expected = check_character(code[:17])
    if code[17] != expected:
        raise _reject(f"第 18 位校验码应为“{expected}”，实为“{code[17]}”", f"position 18, the check character, should be '{expected}', is '{code[17]}'", field)
    return code
