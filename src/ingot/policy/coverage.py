"""Coverage of the seed documents: every provision with its state, so nothing in a document is silently dropped."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import yaml

from ingot.policy.catalogue import Catalogue

ENCODED_AND_TESTED = "encoded_and_tested"
ENCODED_UNTESTED = "encoded_untested"
QUALITATIVE = "qualitative"


@dataclass(frozen=True)
class CoverageRow:
    seed: str
    rule_id: str
    kind: str
    section: str
    title_zh: str
    title_en: str
    state: str
    cases: int


def case_files(directory: Traversable | None = None) -> list[Traversable]:
    folder = directory if directory is not None else resources.files("ingot.policy") / "catalogue" / "cases"
    return sorted((entry for entry in folder.iterdir() if entry.name.endswith(".yaml")), key=lambda e: e.name)


def load_cases(directory: Traversable | None = None) -> list[tuple[str, dict]]:
    """Every case of every case file, as (file name, case mapping)."""
    cases = []
    for entry in case_files(directory):
        for case in yaml.safe_load(entry.read_text(encoding="utf-8")) or []:
            cases.append((entry.name, case))
    return cases


def case_counts(cases: Iterable[tuple[str, dict]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, case in cases:
        counts[case["rule"]] = counts.get(case["rule"], 0) + 1
    return counts


def coverage(catalogue: Catalogue, cases: Iterable[tuple[str, dict]] | None = None) -> list[CoverageRow]:
    """One row per provision, in document order: encoded and tested, encoded without a case, or qualitative."""
    counts = case_counts(load_cases() if cases is None else cases)
    rows = []
    for provision in catalogue.provisions:
        count = counts.get(provision.id, 0)
        if not provision.checkable:
            state = QUALITATIVE
        elif count:
            state = ENCODED_AND_TESTED
        else:
            state = ENCODED_UNTESTED
        rows.append(
            CoverageRow(
                provision.citation.seed, provision.id, provision.kind, provision.citation.section,
                provision.title.zh, provision.title.en, state, count,
            )
        )
    return rows


def coverage_summary(rows: Iterable[CoverageRow]) -> dict[str, dict[str, int]]:
    """Per seed document: how many provisions are in each state."""
    summary: dict[str, dict[str, int]] = {}
    for row in rows:
        states = summary.setdefault(row.seed, {ENCODED_AND_TESTED: 0, ENCODED_UNTESTED: 0, QUALITATIVE: 0})
        states[row.state] += 1
    return summary
