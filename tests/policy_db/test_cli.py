"""`ingot policy …` and `ingot check` through the real command line app."""
from __future__ import annotations

import json

from openpyxl import load_workbook
from typer.testing import CliRunner

from ingot.cli import app
from ingot.policy import runs

runner = CliRunner()
STRICTER = "nm.al.existing_cell_current.min_cell_current=450"


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "240"})


def test_policy_list_filters_and_show_quotes_the_source(db_url):
    listed = json.loads(invoke("policy", "list", "--seed", "003", "--checkable", "--json").output)
    assert listed and all(p["checkable"] and p["seed"].startswith("003") for p in listed)
    qualitative = json.loads(invoke("policy", "list", "--qualitative", "--kind", "institution", "--json").output)
    assert qualitative and all(not p["checkable"] and p["kind"] == "institution" for p in qualitative)
    shown = invoke("policy", "show", "nm.al.existing_cell_current")
    assert shown.exit_code == 0 and "现有电解铝生产线要达到160KA及以上预焙槽" in shown.output
    assert "min_cell_current" in shown.output and "2013-01-01" in shown.output
    unknown = invoke("policy", "show", "no.such.rule")
    assert unknown.exit_code == 2 and "no provision no.such.rule" in unknown.output
    bad_seed = invoke("policy", "list", "--seed", "999")
    assert bad_seed.exit_code == 2 and "unknown_seed" in bad_seed.output


def test_policy_coverage_lists_every_provision(db_url):
    result = invoke("policy", "coverage", "--json")
    assert result.exit_code == 0
    document = json.loads(result.output)
    assert len(document["provisions"]) == len(runs.catalogue().provisions)
    assert {row["state"] for row in document["provisions"]} <= {"encoded_and_tested", "encoded_untested", "qualitative"}
    assert "qualitative" in invoke("policy", "coverage").output


def test_check_as_json_with_what_if_and_store(world, session):
    result = invoke("check", "--as-of", "2018-06-30", "--format", "json", "--set", STRICTER, "--store")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["overrides"] == [STRICTER] and document["unit_count"] == 5 and document["id"]
    assert [(c["rule_id"], c["unit_id"]) for c in document["what_if"]["newly_failing"]] == [
        ("nm.al.existing_cell_current", str(world.units["baotou_good"]))]
    stored = runs.get_run(session, runs.adapter.SYSTEM, document["id"])
    assert stored["counts"] == document["counts"]


def test_check_table_and_xlsx(world, tmp_path):
    table = invoke("check", "--as-of", "2019-06-30", "--only", "fail")
    assert table.exit_code == 0 and "yn.nf.blast_furnace_closure_2018" in table.output and "│ pass " not in table.output and "│ fail " in table.output
    target = tmp_path / "check.xlsx"
    written = invoke("check", "--as-of", "2019-06-30", "--format", "xlsx", "-o", str(target))
    assert written.exit_code == 0, written.output
    sheet = load_workbook(target)["结论 verdicts"]
    assert "yn.nf.blast_furnace_closure_2018" in {row[0].value for row in sheet.iter_rows(min_row=2)}


def test_check_bad_input_is_a_message_and_a_non_zero_exit(world):
    for args, fragment in (
        (("check", "--as-of", "2019-02-30"), "YYYY-MM-DD"),
        (("check", "--as-of", "2019-01-01", "--set", "nm.al.existing_cell_current.nope=1"), "has no parameter nope"),
        (("check", "--as-of", "2019-01-01", "--format", "pdf"), "unknown format"),
        (("check", "--as-of", "2019-01-01", "--format", "xlsx"), "-o FILE"),
        (("check", "--as-of", "2019-01-01", "--only", "bad"), "unknown verdict"),
    ):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert fragment in result.output.replace("\n", " "), result.output
