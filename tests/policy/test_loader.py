"""The loader rejects malformed catalogues with errors naming file, provision and field."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import yaml

from ingot.core.errors import InvalidInput
from ingot.policy.catalogue import CatalogueError, load_catalogue, parse_override

from .helpers import SEED, catalogue_of, param, provision, write_catalogue

THRESHOLD = {"type": "threshold", "measure": "param.cell_current", "op": ">=", "parameter": "min_current"}
def current() -> dict:
    return {"min_current": param("kA", ("2017-01-01", "400"))}


def issues_of(tmp_path, provisions, **kwargs):
    write_catalogue(tmp_path / "catalogue", provisions, **kwargs)
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(tmp_path / "catalogue")
    return caught.value.issues


def codes(issues):
    return {(issue.provision_id, issue.field, issue.code) for issue in issues}


def test_valid_catalogue_loads_and_resolves_dated_values(tmp_path):
    catalogue = catalogue_of(tmp_path, [provision(
        "nm.al.cell", check=THRESHOLD,
        parameters={"min_current": param("kA", ("2017-01-01", "300"), ("2019-01-01", "400"))})])
    assert catalogue.parameter_value("nm.al.cell", "min_current", date(2016, 12, 31)) is None
    assert catalogue.parameter_value("nm.al.cell", "min_current", date(2017, 1, 1)) == Decimal("300")
    assert catalogue.parameter_value("nm.al.cell", "min_current", date(2018, 12, 31)) == Decimal("300")
    assert catalogue.parameter_value("nm.al.cell", "min_current", date(2019, 1, 1)) == Decimal("400")
    assert len(catalogue.content_hash) == 64


def test_content_hash_is_stable_and_follows_content(tmp_path):
    first = catalogue_of(tmp_path / "a", [provision("nm.al.cell", check=THRESHOLD, parameters=current())])
    again = catalogue_of(tmp_path / "b", [provision("nm.al.cell", check=THRESHOLD, parameters=current())])
    changed = catalogue_of(tmp_path / "c", [provision(
        "nm.al.cell", check=THRESHOLD, parameters={"min_current": param("kA", ("2017-01-01", "401"))})])
    assert first.content_hash == again.content_hash
    assert first.content_hash != changed.content_hash


def test_unknown_unit_scope_codes_and_measure(tmp_path):
    bad = provision(
        "nm.al.cell",
        check={"type": "threshold", "measure": "decl.no_such_measure", "op": "<", "parameter": "limit"},
        parameters={"limit": param("furlongs", ("2017-01-01", "1"))},
        scope={"provinces": ["999999"], "metals": ["unobtainium"], "process_types": ["alchemy"]},
    )
    found = codes(issues_of(tmp_path, [bad]))
    assert ("nm.al.cell", "parameters.limit.unit", "unknown_unit") in found
    assert ("nm.al.cell", "scope.provinces[0]", "unknown_province") in found
    assert ("nm.al.cell", "scope.metals[0]", "unknown_metal") in found
    assert ("nm.al.cell", "scope.process_types[0]", "unknown_process_type") in found
    assert ("nm.al.cell", "check.measure", "unknown_measure") in found


def test_duplicate_ids_are_rejected(tmp_path):
    found = codes(issues_of(tmp_path, [provision("nm.al.cell"), provision("nm.al.cell")]))
    assert ("nm.al.cell", "id", "duplicate_id") in found


def test_duplicate_ids_across_files_are_rejected(tmp_path):
    folder = tmp_path / "catalogue"
    write_catalogue(folder, [provision("nm.al.cell")])
    other_document = {"seed": "901_other.txt", "title": {"zh": "另", "en": "other"}, "issuer": {"zh": "另", "en": "other"},
                      "issued_on": None, "provinces": ["530000"]}
    other = provision("nm.al.cell")
    other["citation"]["seed"] = "901_other.txt"
    write_catalogue(folder, [other], file_name="901_other.yaml", document=other_document)
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(folder)
    duplicate = [issue for issue in caught.value.issues if issue.code == "duplicate_id"]
    assert duplicate and duplicate[0].file == "901_other.yaml" and "900_test.yaml" in duplicate[0].message_en


def test_check_must_reference_defined_parameter_with_matching_unit(tmp_path):
    wrong_name = provision("nm.al.a", check={**THRESHOLD, "parameter": "nonexistent"}, parameters=current())
    wrong_unit = provision("nm.al.b", check=THRESHOLD, parameters={"min_current": param("kWh/t", ("2017-01-01", "400"))})
    found = codes(issues_of(tmp_path, [wrong_name, wrong_unit]))
    assert ("nm.al.a", "check.parameter", "unknown_parameter") in found
    assert ("nm.al.b", "check.parameter", "unit_mismatch") in found


def test_bare_yaml_numbers_are_refused(tmp_path):
    data = provision("nm.al.cell", check=THRESHOLD, parameters=current())
    data["parameters"]["min_current"]["values"][0]["value"] = 400.5
    issues = issues_of(tmp_path, [data])
    assert any(issue.provision_id == "nm.al.cell" and issue.field.endswith("values[0].value") for issue in issues)
    assert any("quoted" in issue.message_en for issue in issues)


def test_bad_values_dates_and_ordering(tmp_path):
    data = provision(
        "nm.al.cell", check=THRESHOLD,
        parameters={"min_current": param("kA", ("2018-01-01", "four hundred"), ("2017-01-01", "400"))},
        effective_from="2019-01-01", until="2018-01-01",
    )
    found = codes(issues_of(tmp_path, [data]))
    assert ("nm.al.cell", "parameters.min_current.values[0].value", "bad_value") in found
    assert ("nm.al.cell", "parameters.min_current.values[1].from", "values_order") in found
    assert ("nm.al.cell", "effective.until", "effective_order") in found


def test_checkable_and_check_must_agree(tmp_path):
    no_check = provision("nm.al.a", parameters=current())
    no_check["checkable"] = True
    stray_check = provision("nm.al.b", check=THRESHOLD, parameters=current())
    stray_check["checkable"] = False
    found = codes(issues_of(tmp_path, [no_check, stray_check]))
    assert ("nm.al.a", "check", "check_missing") in found
    assert ("nm.al.b", "check", "check_on_qualitative") in found


def test_check_type_requirements(tmp_path):
    cap_up = provision("nm.al.cap", parameters={"cap": param("t/a", ("2017-01-01", "10"))},
                       check={"type": "cap", "measure": "capacity.primary_aluminium", "op": ">=", "parameter": "cap"})
    target_no_date = provision("nm.al.target", parameters={"target": param("t/a", ("2017-01-01", "10"))},
                               check={"type": "plan_target", "measure": "capacity.primary_aluminium", "op": ">=", "parameter": "target"})
    deadline_not_date = provision("nm.al.close", parameters={"when": param("t/a", ("2017-01-01", "10"))},
                                  check={"type": "deadline", "parameter": "when"})
    share_missing = provision("nm.al.share", parameters={"rate": param("percent", ("2017-01-01", "80"))},
                              check={"type": "share", "numerator": "decl.metal_output", "op": ">=", "parameter": "rate",
                                     "group_by": ["galaxy"]})
    found = codes(issues_of(tmp_path, [cap_up, target_no_date, deadline_not_date, share_missing]))
    assert ("nm.al.cap", "check.op", "op_direction") in found
    assert ("nm.al.target", "check.deadline", "check_field_missing") in found
    assert ("nm.al.close", "check.parameter", "unit_mismatch") in found
    assert ("nm.al.share", "check.denominator", "check_field_missing") in found
    assert ("nm.al.share", "check.group_by[0]", "unknown_group") in found


def test_unit_age_needs_a_dividing_date(tmp_path):
    data = provision("nm.al.cell", check=THRESHOLD, parameters=current(), effective_from=None,
                     scope={"provinces": ["150000"], "unit_age": "new"})
    assert ("nm.al.cell", "scope.unit_age", "unit_age_needs_date") in codes(issues_of(tmp_path, [data]))


def test_schema_errors_name_the_provision_and_field(tmp_path):
    data = provision("nm.al.cell")
    data["kind"] = "wish"
    data["colour"] = "blue"
    issues = issues_of(tmp_path, [data])
    fields = {(issue.provision_id, issue.field) for issue in issues}
    assert ("nm.al.cell", "provisions[0].kind") in fields
    assert ("nm.al.cell", "provisions[0].colour") in fields


def test_file_name_seed_and_id_form(tmp_path):
    data = provision("NM-AL-Cell")
    data["citation"]["seed"] = "902_elsewhere.txt"
    found = codes(issues_of(tmp_path, [data], file_name="misnamed.yaml"))
    assert (None, "document.seed", "file_name_mismatch") in found
    assert ("NM-AL-Cell", "id", "bad_id") in found
    assert ("NM-AL-Cell", "citation.seed", "citation_seed_mismatch") in found


def test_yaml_syntax_error_names_the_file(tmp_path):
    folder = tmp_path / "catalogue"
    folder.mkdir()
    (folder / "900_test.yaml").write_text("document: [unclosed\n", encoding="utf-8")
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(folder)
    assert caught.value.issues[0].file == "900_test.yaml" and caught.value.issues[0].code == "yaml_syntax"
    assert "政策目录校验失败" in caught.value.message_zh


def test_overrides_are_parsed_and_validated(tmp_path):
    catalogue = catalogue_of(tmp_path, [
        provision("nm.al.cell", check=THRESHOLD, parameters=current()),
        provision("nm.pb.close", check={"type": "deadline", "parameter": "when"},
                  parameters={"when": param("date", ("2017-01-01", "2018-12-31"))}),
    ])
    override = parse_override("nm.al.cell.min_current=420", catalogue)
    assert (override.rule_id, override.parameter, override.value) == ("nm.al.cell", "min_current", Decimal("420"))
    assert catalogue.parameter_value("nm.al.cell", "min_current", date(2018, 1, 1), [override]) == Decimal("420")
    assert parse_override("nm.pb.close.when=2020-06-30", catalogue).value == date(2020, 6, 30)
    with pytest.raises(InvalidInput, match="names no parameter") as caught:
        parse_override("nm.al.cell=420", catalogue)
    assert "min_current" in caught.value.message_en
    for text, code in (("nm.al.cell.min_current", "override_syntax"), ("nm.al.cell.max=1", "unknown_parameter"),
                       ("nm.zz.none.x=1", "unknown_rule"), ("nm.al.cell.min_current=lots", "override_value"),
                       ("nm.pb.close.when=soon", "override_value")):
        with pytest.raises(InvalidInput) as caught:
            parse_override(text, catalogue)
        assert caught.value.code == code, text
        assert caught.value.message_zh and caught.value.message_en


def test_packaged_catalogue_loads_through_importlib_resources():
    catalogue = load_catalogue()
    assert {"001_5da414b67177a1ca.txt", "003_af69fe513fa759e2.txt"} <= set(catalogue.documents)
    provision_ = catalogue.provision("nm.al.new_cell_current")
    assert provision_.citation.section == "四、（二）"
    assert yaml.safe_dump(catalogue.content_hash)  # a plain string, storable beside a run
    assert SEED not in catalogue.documents


def test_facts_from_mapping_reads_exact_numbers_and_refuses_floats():
    from ingot.policy.facts import facts_from_mapping

    facts = facts_from_mapping({"province": "150000", "status": "operating", "commissioned_on": "2018-01-01",
                                "params": {"cell_current": "400.5"}, "capacities": {"primary_aluminium": 250000}})
    assert facts.params == {"cell_current": Decimal("400.5")} and facts.commissioned_on == date(2018, 1, 1)
    assert facts.fact("capacity.primary_aluminium") == Decimal("250000") and facts.fact("decl.none") is None
    for raw, code in (
        ({"province": "150000", "status": "operating", "params": {"cell_current": 400.5}}, "inexact_number"),
        ({"province": "150000", "status": "operating", "params": {"cell_current": "lots"}}, "not_a_number"),
        ({"province": "150000", "status": "operating", "commissioned_on": "last year"}, "bad_date"),
        ({"province": "150000", "status": "operating", "colour": "red"}, "unknown_field"),
        ({"province": "150000"}, "required"),
    ):
        with pytest.raises(InvalidInput) as caught:
            facts_from_mapping(raw)
        assert caught.value.code == code and caught.value.message_zh and caught.value.message_en
