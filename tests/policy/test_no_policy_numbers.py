"""No policy number lives in Python: thresholds, caps and targets are read from the catalogue only.

Every numeric parameter value of a checkable provision is searched for, as a number literal or as a number inside a
string literal, in the Python code that applies policy: the policy package and every module of src/ingot that
imports it (pages, API, CLI). In the pure core (catalogue, facts, engine, coverage) every value counts; in the rest
only distinctive ones (at least 1,000 or with a fraction, and not a power of ten), since small integers such as 30
or 400 have many unrelated uses (an HTTP status, a page size) and powers of ten are unit scales (grams per tonne).
Modules that never touch policy (market prices, demo data) are not searched: a price of 80,000 fen there is not a
smelter's minimum capacity. The percent scale 100 is the one number the engine itself must know.
"""
from __future__ import annotations

import io
import re
import tokenize
from decimal import Decimal, InvalidOperation
from pathlib import Path

from ingot.policy.catalogue import load_catalogue

SRC = Path(__file__).resolve().parents[2] / "src" / "ingot"
POLICY_PACKAGE = SRC / "policy"
POLICY_CORE = {SRC / "policy" / name for name in ("catalogue.py", "facts.py", "engine.py", "coverage.py", "__init__.py")}
NOT_POLICY = {Decimal(0), Decimal(1), Decimal(100)}  # zero, unit, and the percent scale
NUMBER_IN_TEXT = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")


def policy_numbers() -> set[Decimal]:
    numbers = set()
    for provision in load_catalogue().checkable():
        for spec in provision.parameters.values():
            if spec.unit in ("date", "text"):
                continue
            numbers.update(Decimal(str(dated.value)) for dated in spec.values)
    return numbers - NOT_POLICY


def literals(path: Path):
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    for token in tokens:
        candidates = []
        if token.type == tokenize.NUMBER:
            candidates = [token.string.replace("_", "")]
        elif token.type == tokenize.STRING:
            candidates = NUMBER_IN_TEXT.findall(token.string)
        for text in candidates:
            try:
                yield token.start[0], Decimal(text)
            except InvalidOperation:
                continue


def applies_policy(path: Path) -> bool:
    if POLICY_PACKAGE in path.parents:
        return True
    text = path.read_text(encoding="utf-8")
    return "ingot.policy" in text or "from ingot import policy" in text


def power_of_ten(number: Decimal) -> bool:
    digits = number.normalize().as_tuple()
    return digits.digits == (1,) and digits.exponent >= 0


def distinctive(number: Decimal) -> bool:
    if power_of_ten(number):
        return False
    return number >= 1000 or number != number.to_integral_value()


def test_catalogue_numbers_do_not_appear_in_code():
    numbers = policy_numbers()
    assert numbers, "the catalogue should have numeric thresholds to look for"
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if not applies_policy(path):
            continue
        strict = path in POLICY_CORE
        for line, value in literals(path):
            if value in numbers and (strict or distinctive(value)):
                found.append(f"{path.relative_to(SRC)}:{line}: {value}")
    assert not found, "policy numbers written into code (read them from the catalogue instead):\n" + "\n".join(found)


def test_the_search_would_find_a_planted_number(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('LIMIT = 12750\nMESSAGE = "must be below 13200 kWh/t"\n', encoding="utf-8")
    assert {value for _, value in literals(planted)} == {Decimal("12750"), Decimal("13200")}
    assert {Decimal("12750"), Decimal("13200")} <= policy_numbers()
    assert distinctive(Decimal("12750")) and distinctive(Decimal("27.3"))
    assert not distinctive(Decimal("1000000")) and not distinctive(Decimal("400"))
