"""Code 128 (code set B) drawn as inline SVG, so that a warehouse receipt's number prints as a scannable barcode.

Code set B covers printable ASCII (space to `~`): a character's symbol value is its code point minus 32. A barcode
is the Start B symbol (value 104), one symbol per character, the check symbol — the sum of the start value and
each character's value times its position (1, 2, …), modulo 103 — and the stop pattern, with a quiet zone of ten
modules on each side. Each symbol is three bars and three spaces, 11 modules wide; the stop is 13 modules wide
(four bars, three spaces). Pure Python, no dependency.
"""
from __future__ import annotations

from markupsafe import Markup, escape

# Bar and space widths in modules (bar first) of each symbol value 0–105, from ISO/IEC 15417 table 1; the
# stop (106) is the 13-module STOP.
PATTERNS = (
    "212222", "222122", "222221", "121223", "121322", "131222", "122213", "122312", "132212", "221213",
    "221312", "231212", "112232", "122132", "122231", "113222", "123122", "123221", "223211", "221132",
    "221231", "213212", "223112", "312131", "311222", "321122", "321221", "312212", "322112", "322211",
    "212123", "212321", "232121", "111323", "131123", "131321", "112313", "132113", "132311", "211313",
    "231113", "231311", "112133", "112331", "132131", "113123", "113321", "133121", "313121", "211331",
    "231131", "213113", "213311", "213131", "311123", "311321", "331121", "312113", "312311", "332111",
    "314111", "221411", "431111", "111224", "111422", "121124", "121421", "141122", "141221", "112214",
    "112412", "122114", "122411", "142112", "142211", "241211", "221114", "413111", "241112", "134111",
    "111242", "121142", "121241", "114212", "124112", "124211", "411212", "421112", "421211", "212141",
    "214121", "412121", "111143", "111341", "131141", "114113", "114311", "411113", "411311", "113141",
    "114131", "311141", "411131", "211412", "211214", "211232",
)
STOP = "2331112"
START_B = 104
QUIET_ZONE_MODULES = 10


class NotEncodable(ValueError):
    """The text has a character outside code set B (printable ASCII), or is empty."""


def symbol_values(text: str) -> list[int]:
    """Start B, the characters' values, and the check symbol (the stop has no value)."""
    if not text:
        raise NotEncodable("nothing to encode")
    values = [START_B]
    for character in text:
        if not " " <= character <= "~":
            raise NotEncodable(f"{character!r} is not in Code 128 code set B")
        values.append(ord(character) - 32)
    values.append(check_symbol(values[1:]))
    return values


def check_symbol(character_values: list[int]) -> int:
    """(Start B + Σ position × value) mod 103, positions counted from 1."""
    return (START_B + sum(position * value for position, value in enumerate(character_values, start=1))) % 103


def module_widths(text: str) -> str:
    """The whole barcode as alternating bar/space widths, bar first, quiet zones excluded."""
    return "".join(PATTERNS[value] for value in symbol_values(text)) + STOP


def svg(text: str, *, module_px: int = 2, height_px: int = 80, caption: bool = True) -> Markup:
    """An inline SVG of the barcode, one rectangle per bar, with the text printed below it."""
    widths = module_widths(text)
    x = QUIET_ZONE_MODULES
    bars = []
    for index, width in enumerate(int(w) for w in widths):
        if index % 2 == 0:
            bars.append(f'<rect x="{x * module_px}" y="0" width="{width * module_px}" height="{height_px}"/>')
        x += width
    total_px = (x + QUIET_ZONE_MODULES) * module_px
    caption_px = 18 if caption else 0
    label = escape(text)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="barcode" role="img" aria-label="Code 128: {label}" '
             f'width="{total_px}" height="{height_px + caption_px}" viewBox="0 0 {total_px} {height_px + caption_px}">',
             f'<rect x="0" y="0" width="{total_px}" height="{height_px + caption_px}" fill="#fff"/>',
             '<g fill="#000">', *bars, "</g>"]
    if caption:
        parts.append(f'<text x="{total_px // 2}" y="{height_px + 14}" font-family="monospace" font-size="14" '
                     f'text-anchor="middle">{label}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
