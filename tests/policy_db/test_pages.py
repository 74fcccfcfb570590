"""The policy and compliance pages: behind login, scoped, bilingual, with citations and SVG charts."""
from __future__ import annotations

from ingot.core.auth import ENTERPRISE, Principal
from ingot.policy.pages import unit_verdicts_fragment
from tests.policy_db.world import PASSWORD

HTML = {"accept": "text/html"}


def page_login(client, username):
    response = client.post("/login", data={"username": username, "password": PASSWORD, "next": "/"}, follow_redirects=False)
    assert response.status_code == 303


def test_pages_need_a_login(client, world):
    for path in ("/policy", "/compliance", "/compliance/what-if"):
        response = client.get(path, headers=HTML, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_catalogue_browser_shows_quotes_parameters_and_filters(client, world):
    page_login(client, "nm_reg")
    page = client.get("/policy", params={"seed": "003_af69fe513fa759e2.txt", "checkable": "yes"})
    assert page.status_code == 200
    assert "现有电解铝生产线要达到160KA及以上预焙槽" in page.text and "min_cell_current" in page.text and "2013-01-01" in page.text
    english = client.get("/policy", params={"metal": "aluminium", "lang": "en"})
    assert "Existing aluminium lines" in english.text and "Policy catalogue" in english.text
    bad = client.get("/policy", params={"kind": "law", "lang": "zh-CN"})
    assert bad.status_code == 422 and "未知的条款类别" in bad.text
    detail = client.get("/policy/provisions/nm.al.existing_cell_current")
    assert detail.status_code == 200 and "四、（二）" in detail.text
    unknown = client.get("/policy/provisions/no.such.rule", headers={"accept": "text/html"})
    assert unknown.status_code == 404 and "no.such.rule" in unknown.text


def test_dashboard_and_regulator_pages(client, world):
    page_login(client, "padmin")
    dashboard = client.get("/compliance", params={"as_of": "2019-06-30"})
    assert dashboard.status_code == 200 and dashboard.text.count("<svg") >= 2
    assert "内蒙古自治区" in dashboard.text and "yn.nf.blast_furnace_closure_2018" in dashboard.text
    elimination = client.get("/compliance/elimination", params={"as_of": "2018-06-30"})
    assert "honghe_lead" in elimination.text and "2018-12-31" in elimination.text
    headroom = client.get("/compliance/headroom", params={"as_of": "2018-06-30"})
    assert "nm.al.smelting_capacity_2020" in headroom.text and "820000" in headroom.text
    what_if = client.get("/compliance/what-if", params={"as_of": "2018-06-30", "overrides": "nm.al.existing_cell_current.min_cell_current=450"})
    assert what_if.status_code == 200 and 'data-testid="newly-failing">1<' in what_if.text and "500000" in what_if.text
    bad = client.get("/compliance/what-if", params={"as_of": "2018-06-30", "overrides": "nm.al.existing_cell_current=4"})
    assert bad.status_code == 422 and 'class="error"' in bad.text
    admission = client.get("/compliance/admission", params={"as_of": "2018-01-01", "province": "150000",
                                                            "process_type": "al_prebake_electrolysis", "params": "cell_current=300"})
    assert admission.status_code == 200 and 'data-testid="decision">不予准入' in admission.text
    malformed = client.get("/compliance/admission", params={"province": "150000", "params": "cell_current"})
    assert malformed.status_code == 422 and "代码=值" in malformed.text


def test_runs_pages_create_view_compare(client, world):
    page_login(client, "padmin")
    first = client.post("/compliance/runs", data={"as_of": "2018-06-30", "label": "first", "overrides": ""}, follow_redirects=False)
    assert first.status_code == 303
    second = client.post("/compliance/runs", data={"as_of": "2019-06-30", "label": "second", "overrides": ""}, follow_redirects=False)
    first_id, second_id = first.headers["location"].rsplit("/", 1)[1], second.headers["location"].rsplit("/", 1)[1]
    listing = client.get("/compliance/runs")
    assert "first" in listing.text and "second" in listing.text
    run = client.get(f"/compliance/runs/{first_id}", params={"verdict": "fail"})
    assert run.status_code == 200 and "nm.al.existing_cell_current" in run.text
    compared = client.get(f"/compliance/runs/{first_id}/compare", params={"other": second_id})
    assert compared.status_code == 200 and "yn.nf.blast_furnace_closure_2018" in compared.text
    bad = client.post("/compliance/runs", data={"as_of": "someday", "overrides": ""})
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.text


def test_enterprise_user_sees_only_its_own_unit(client, world):
    page_login(client, "good_ent")
    own = client.get(f"/compliance/units/{world.units['baotou_good']}", params={"as_of": "2018-06-30"})
    assert own.status_code == 200 and "nm.al.existing_cell_current" in own.text
    assert client.get(f"/compliance/units/{world.units['baotou_old']}", params={"as_of": "2018-06-30"}).status_code == 404
    dashboard = client.get("/compliance", params={"as_of": "2018-06-30"})
    assert "honghe_lead" not in dashboard.text and "baotou_old" not in dashboard.text
    assert 'data-testid="run-form"' not in client.get("/compliance/runs").text


def test_unit_verdicts_fragment_for_the_registry_unit_page(session, world):
    owner = Principal(70, "good_ent", ENTERPRISE, enterprise_id=world.enterprises["baotou_good"])
    from datetime import date

    html = unit_verdicts_fragment(session, owner, world.units["baotou_good"], date(2018, 6, 30), "en")
    assert 'data-testid="unit-verdicts"' in html and "Compliance of this unit" in html and "160KA" in html
    empty = unit_verdicts_fragment(session, owner, world.units["baotou_good"], date(2000, 1, 1), "zh-CN")
    assert "没有适用于本单元" in empty
