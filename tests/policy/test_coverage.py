"""Coverage lists every provision of every document with its state."""
from __future__ import annotations

from ingot.policy.catalogue import load_catalogue
from ingot.policy.coverage import ENCODED_AND_TESTED, ENCODED_UNTESTED, QUALITATIVE, coverage, coverage_summary

from .helpers import catalogue_of, param, provision


def test_states_from_catalogue_and_cases(tmp_path):
    catalogue = catalogue_of(tmp_path, [
        provision("t.al.tested", check={"type": "threshold", "measure": "param.cell_current", "op": ">=", "parameter": "p"},
                  parameters={"p": param("kA", ("2017-01-01", "1"))}),
        provision("t.al.untested", check={"type": "threshold", "measure": "param.cell_current", "op": ">=", "parameter": "p"},
                  parameters={"p": param("kA", ("2017-01-01", "1"))}),
        provision("t.al.words", kind="guidance"),
    ])
    cases = [("900_test.yaml", {"rule": "t.al.tested"}), ("900_test.yaml", {"rule": "t.al.tested"})]
    rows = coverage(catalogue, cases)
    assert [(row.rule_id, row.state, row.cases) for row in rows] == [
        ("t.al.tested", ENCODED_AND_TESTED, 2), ("t.al.untested", ENCODED_UNTESTED, 0), ("t.al.words", QUALITATIVE, 0)]
    assert rows[0].seed == "900_test.txt" and rows[0].section == "一、"
    assert coverage_summary(rows) == {"900_test.txt": {ENCODED_AND_TESTED: 1, ENCODED_UNTESTED: 1, QUALITATIVE: 1}}


def test_packaged_catalogue_is_fully_covered():
    catalogue = load_catalogue()
    rows = coverage(catalogue)
    assert len(rows) == len(catalogue.provisions)
    untested = [row.rule_id for row in rows if row.state == ENCODED_UNTESTED]
    assert not untested, f"checkable provisions without cases: {untested}"
    seeds = {row.seed for row in rows}
    assert {"001_5da414b67177a1ca.txt", "003_af69fe513fa759e2.txt"} <= seeds
