"""GB 32100-2015 unified social credit codes: valid codes pass, every kind of damage is named."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from ingot.core.errors import InvalidInput
from ingot.registry.uscc import ALPHABET, WEIGHTS, check_character, make_uscc, organisation_check_character, validate_uscc

# The code printed as the example in GB 32100-2015 itself.
STANDARD_EXAMPLE = "91350100M000100Y43"


def test_the_standards_example_is_valid():
    assert validate_uscc(STANDARD_EXAMPLE) == STANDARD_EXAMPLE


def test_lower_case_and_spaces_are_normalised():
    assert validate_uscc("  " + STANDARD_EXAMPLE.lower() + " ") == STANDARD_EXAMPLE


def test_weights_are_powers_of_three_modulo_31():
    assert WEIGHTS[:6] == (1, 3, 9, 27, 19, 26)
    assert WEIGHTS[-1] == 28


def test_organisation_check_character_by_hand():
    # D2143569: 13*3 + 2*7 + 1*9 + 4*10 + 3*5 + 5*8 + 6*4 + 9*2 = 199; 199 % 11 = 1; 11 - 1 = 10 -> X
    assert organisation_check_character("D2143569") == "X"
    # 00000000: 11 - 0 = 11 -> 0
    assert organisation_check_character("00000000") == "0"


def test_overall_check_character_by_hand():
    first17 = STANDARD_EXAMPLE[:17]
    total = sum(ALPHABET.index(c) * w for c, w in zip(first17, WEIGHTS))
    assert check_character(first17) == ALPHABET[(31 - total % 31) % 31] == "3"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("91350100M000100Y4", "18"),
        ("91350100M000100Y44", "position 18"),
        ("91350100M000100Y53", "position 17"),
        ("9135010OM000100Y43", "not allowed"),
        ("H1350100M000100Y43", "position 1"),
        ("90350100M000100Y43", "position 2"),
        ("913501A0M000100Y43", "positions 3-8"),
        ("", "18"),
    ],
)
def test_damaged_codes_are_rejected_with_the_reason(code, reason):
    with pytest.raises(InvalidInput) as rejected:
        validate_uscc(code, field="uscc")
    assert reason in rejected.value.message_en
    assert rejected.value.field == "uscc"
    assert rejected.value.status_code == 422
    assert "统一社会信用代码" in rejected.value.message_zh


BODY = st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=8, max_size=8)


@given(body=BODY, division=st.from_regex(r"\A[1-6][0-9]{5}\Z"))
def test_generated_codes_validate_and_any_single_substitution_is_caught(body, division):
    code = make_uscc("9", "1", division, body)
    assert validate_uscc(code) == code
    for replacement in ("0", "1", "A"):
        damaged = code[:17] + replacement
        if damaged != code:
            with pytest.raises(InvalidInput):
                validate_uscc(damaged)
