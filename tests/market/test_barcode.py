"""The Code 128 (code set B) encoder against encodings worked out by hand from the ISO/IEC 15417 symbol table."""
from __future__ import annotations

import re

import pytest

from ingot.market.barcode import PATTERNS, STOP, NotEncodable, check_symbol, module_widths, svg, symbol_values


def test_the_table_has_106_distinct_symbols_of_eleven_modules_and_a_thirteen_module_stop():
    assert len(PATTERNS) == 106 == len(set(PATTERNS))
    assert all(sum(map(int, pattern)) == 11 for pattern in PATTERNS)
    assert sum(map(int, STOP)) == 13


def test_hi_by_hand():
    # H = 72 − 32 = 40, i = 105 − 32 = 73; check = (104 + 1×40 + 2×73) mod 103 = 290 mod 103 = 84.
    assert symbol_values("Hi") == [104, 40, 73, 84]
    # Start B 211214 · H 231113 · i 142112 · check 84 124112 · stop 2331112
    assert module_widths("Hi") == "211214" "231113" "142112" "124112" "2331112"


def test_pjj123c_by_hand():
    # P=48 J=42 J=42 1=17 2=18 3=19 C=35:
    # 104 + 48 + 2×42 + 3×42 + 4×17 + 5×18 + 6×19 + 7×35 = 879, and 879 mod 103 = 55 ('W').
    assert check_symbol([48, 42, 42, 17, 18, 19, 35]) == 55
    assert symbol_values("PJJ123C")[-1] == 55
    widths = module_widths("PJJ123C")
    assert widths.startswith("211214" "313121")  # Start B, then P (48)
    assert widths.endswith("311321" "2331112")  # check 55, then stop


def test_a_receipt_number_and_its_check_symbol():
    # K=43 M=45 0=16 1=17: 104 + 43 + 2×45 + 3×16 + 4×17 = 353, 353 mod 103 = 44.
    assert symbol_values("KM01") == [104, 43, 45, 16, 17, 44]
    assert module_widths("KM01")[-13:] == "132131" "2331112"


def test_only_printable_ascii_is_encodable():
    for text in ("", "仓单", "tab\there", "\x7f"):
        with pytest.raises(NotEncodable):
            symbol_values(text)


def test_the_svg_draws_one_rectangle_per_bar_at_the_module_widths():
    drawing = str(svg("Hi", module_px=3))
    widths = [int(w) for w in module_widths("Hi")]
    bars = re.findall(r'<rect x="(\d+)" y="0" width="(\d+)" height="80"/>', drawing)
    assert [int(width) for _, width in bars] == [3 * w for w in widths[0::2]]
    # The first bar starts after the ten-module quiet zone; each bar starts where the previous bar and space end.
    position = 10
    for (x, _), index in zip(bars, range(0, len(widths), 2)):
        assert int(x) == 3 * position
        position += widths[index] + (widths[index + 1] if index + 1 < len(widths) else 0)
    assert 'aria-label="Code 128: Hi"' in drawing and ">Hi</text>" in drawing
    assert "<script" not in drawing
