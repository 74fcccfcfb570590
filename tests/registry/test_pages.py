"""The registry's web pages: behind login, scoped, bilingual, with search, filters, pagination and no 500 on bad input."""
from __future__ import annotations

import re

import pytest

from ingot.core import auth
from ingot.registry import service

from .helpers import ADMIN_P, build_world

PASSWORD = "correct-horse-42"
HTML = {"accept": "text/html"}


@pytest.fixture
def world(session):
    """The shared registry world, plus a park, a group, capacities, a later idle status and a declaration."""
    made = build_world(session)
    park = service.create_park(session, ADMIN_P, {"name": "安宁工业园区", "level": "provincial", "division_code": "530181",
                                                  "industries": ["aluminium"]})
    group = service.create_group(session, ADMIN_P, {"name": "滇中有色集团"})
    service.update_enterprise(session, ADMIN_P, made.kunming["id"], {"park_id": park["id"], "group_id": group["id"],
                                                                       "above_designated": True})
    for unit, product, value in ((made.kunming_unit, "primary_aluminium", "350000"), (made.honghe_unit, "refined_tin", "30000"),
                                 (made.sichuan_unit, "sponge_titanium", "15000")):
        service.add_fact(session, ADMIN_P, unit["id"], "capacities", {"product_code": product, "value": value, "effective_from": "2012-05-01"})
    service.add_fact(session, ADMIN_P, made.kunming_unit["id"], "status", {"status": "idle", "effective_on": "2020-01-01", "note": "限电停槽"})
    service.add_fact(session, ADMIN_P, made.kunming_unit["id"], "declarations",
                     {"year": 2019, "measure_code": "al_liquid_ac_power", "value": "13000", "unit": "kWh/t", "source": "2019 年报"})
    for username, role, division, enterprise in (
        ("root", auth.ADMIN, None, None),
        ("yunnan", auth.REGULATOR, "530000", None),
        ("sichuan", auth.REGULATOR, "510000", None),
        ("km_user", auth.ENTERPRISE, None, made.kunming["id"]),
    ):
        auth.create_user(session, username=username, password=PASSWORD, role=role, division_code=division, enterprise_id=enterprise)
    session.commit()
    return made


@pytest.fixture
def log_in(client, world):
    """Log in through the login form, as a browser does: the page cookie then rides on every request."""

    def as_user(username: str):
        client.cookies.clear()
        response = client.post("/login", data={"username": username, "password": PASSWORD, "next": "/"}, follow_redirects=False)
        assert response.status_code == 303, response.text
        return client

    return as_user


def by_testid(page: str, name: str) -> str:
    """The inner HTML of the first element carrying data-testid=name (the pages do not nest same-tag testids)."""
    found = re.search(rf'<(\w+)[^>]*data-testid="{name}"[^>]*>(.*?)</\1>', page, re.S)
    assert found, f"no element with data-testid={name}"
    return found.group(2)


def enterprise_names(page: str) -> list[str]:
    return re.findall(r'data-testid="enterprise-link">([^<]+)</a>', page)


def unit_ids(page: str) -> list[int]:
    return [int(found) for found in re.findall(r'data-testid="unit-link" href="/registry/units/(\d+)"', page)]


def test_every_page_sends_an_anonymous_visitor_to_login(client, world):
    for path in ("/", "/registry/enterprises", f"/registry/enterprises/{world.kunming['id']}", "/registry/units",
                 f"/registry/units/{world.kunming_unit['id']}", f"/registry/sites/{world.kunming_site['id']}"):
        response = client.get(path, headers=HTML, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == f"/login?next={path}"


def test_overview_counts_scope_and_charts_capacity(log_in):
    client = log_in("yunnan")
    page = client.get("/")
    assert page.status_code == 200
    assert by_testid(page.text, "count-enterprises") == "2" and by_testid(page.text, "count-units") == "2"
    assert "<svg" in page.text and "各省分金属登记产能" in page.text
    table = by_testid(page.text, "capacity-table")
    assert "云南省" in table and "350000" in table and "30000" in table
    assert "四川省" not in page.text and "15000" not in table
    assert 'href="/registry/enterprises"' in page.text and 'href="/registry/units"' in page.text
    # Before anything was commissioned there is no registered capacity to draw.
    before = client.get("/", params={"as_of": "2010-01-01"})
    assert before.status_code == 200 and "<svg" not in before.text and "该日期没有登记产能" in before.text
    everything = log_in("root").get("/")
    assert by_testid(everything.text, "count-enterprises") == "3" and "四川省" in by_testid(everything.text, "capacity-table")


def test_enterprise_list_searches_filters_and_sorts(log_in, world):
    client = log_in("yunnan")
    listing = client.get("/registry/enterprises")
    assert listing.status_code == 200
    assert sorted(enterprise_names(listing.text)) == sorted([world.kunming["name"], world.honghe["name"]])
    assert '<input type="search" name="q"' in listing.text and '<button type="submit">' in listing.text
    assert enterprise_names(client.get("/registry/enterprises", params={"q": "kunming"}).text) == [world.kunming["name"]]
    assert enterprise_names(client.get("/registry/enterprises", params={"q": world.honghe["uscc"][:12]}).text) == [world.honghe["name"]]
    assert enterprise_names(client.get("/registry/enterprises", params={"prefecture": "532500"}).text) == [world.honghe["name"]]
    assert enterprise_names(client.get("/registry/enterprises", params={"metal": "tin"}).text) == [world.honghe["name"]]
    assert enterprise_names(client.get("/registry/enterprises", params={"process_type": "al_prebake_electrolysis"}).text) == [world.kunming["name"]]
    assert enterprise_names(client.get("/registry/enterprises", params={"status": "idle"}).text) == [world.kunming["name"]]
    assert enterprise_names(client.get("/registry/enterprises", params={"status": "closed"}).text) == []
    ascending = enterprise_names(client.get("/registry/enterprises", params={"sort": "name"}).text)
    descending = enterprise_names(client.get("/registry/enterprises", params={"sort": "-name"}).text)
    assert ascending == sorted(ascending) and descending == ascending[::-1]
    # The filter form offers only the jurisdiction's own divisions.
    assert 'value="532500"' in listing.text and 'value="510400"' not in listing.text


def test_enterprise_list_pages_and_exports_the_same_filters(log_in, world, monkeypatch):
    from ingot.registry import pages

    monkeypatch.setattr(pages, "PAGE_SIZE", 1)
    client = log_in("root")
    first = client.get("/registry/enterprises", params={"province": "530000"})
    assert len(enterprise_names(first.text)) == 1 and 'data-testid="previous-page"' not in first.text
    next_link = re.search(r'href="([^"]+)" rel="next"', first.text).group(1).replace("&amp;", "&")
    assert "province=530000" in next_link and "page=2" in next_link
    second = client.get(next_link)
    assert second.status_code == 200 and 'data-testid="previous-page"' in second.text and 'data-testid="next-page"' not in second.text
    assert set(enterprise_names(first.text) + enterprise_names(second.text)) == {world.kunming["name"], world.honghe["name"]}
    export = re.search(r'href="([^"]+)" data-testid="export-csv"', first.text).group(1).replace("&amp;", "&")
    assert export.startswith("/api/registry/export/enterprises?") and "province=530000" in export
    exported = client.get(export)
    assert exported.status_code == 200
    assert world.kunming["uscc"] in exported.text and world.honghe["uscc"] in exported.text and world.sichuan["uscc"] not in exported.text


def test_enterprise_detail_shows_its_record_sites_units_and_versions(log_in, world):
    client = log_in("yunnan")
    page = client.get(f"/registry/enterprises/{world.kunming['id']}")
    assert page.status_code == 200
    assert re.search(r"<h1>([^<]*)</h1>", page.text).group(1) == world.kunming["name"]
    facts = by_testid(page.text, "enterprise-facts")
    for expected in (world.kunming["uscc"], "私营", "云南省 · 昆明市", "安宁工业园区", "滇中有色集团", "是"):
        assert expected in facts, expected
    assert f'href="/registry/sites/{world.kunming_site["id"]}"' in page.text
    assert unit_ids(page.text) == [world.kunming_unit["id"]]
    versions = by_testid(page.text, "version-history")
    assert versions.count("<tr>") == 3  # header, the creation and the park/group update
    assert "park_id" in versions and "首次登记" in versions


def test_site_page_lists_its_units(log_in, world):
    client = log_in("yunnan")
    page = client.get(f"/registry/sites/{world.honghe_site['id']}")
    assert page.status_code == 200 and "<h1>一厂</h1>" in page.text and world.honghe["name"] in page.text
    assert unit_ids(page.text) == [world.honghe_unit["id"]] and "红河" in page.text


def test_unit_list_filters_by_place_metal_status_and_date(log_in, world):
    client = log_in("yunnan")
    listing = client.get("/registry/units")
    assert listing.status_code == 200 and sorted(unit_ids(listing.text)) == sorted([world.kunming_unit["id"], world.honghe_unit["id"]])
    assert unit_ids(client.get("/registry/units", params={"q": "honghe"}).text) == [world.honghe_unit["id"]]
    assert unit_ids(client.get("/registry/units", params={"prefecture": "530100"}).text) == [world.kunming_unit["id"]]
    assert unit_ids(client.get("/registry/units", params={"metal": "aluminium"}).text) == [world.kunming_unit["id"]]
    assert unit_ids(client.get("/registry/units", params={"process_type": "sn_smelting"}).text) == [world.honghe_unit["id"]]
    assert unit_ids(client.get("/registry/units", params={"status": "idle"}).text) == [world.kunming_unit["id"]]
    operating_in_2015 = client.get("/registry/units", params={"status": "operating", "as_of": "2015-06-30"})
    assert sorted(unit_ids(operating_in_2015.text)) == sorted([world.kunming_unit["id"], world.honghe_unit["id"]])
    assert "2015-06-30" in operating_in_2015.text
    own = client.get("/registry/units", params={"enterprise_id": world.honghe["id"]})
    assert unit_ids(own.text) == [world.honghe_unit["id"]] and 'name="enterprise_id"' in own.text


def test_unit_detail_as_of_a_date_with_its_facts_history_and_verdicts(log_in, world):
    client = log_in("yunnan")
    unit_id = world.kunming_unit["id"]
    today = client.get(f"/registry/units/{unit_id}")
    assert today.status_code == 200
    assert "电解铝预焙槽" in by_testid(today.text, "unit-process")
    assert "停产" in by_testid(today.text, "unit-status")
    parameters = by_testid(today.text, "parameters")
    assert "电解槽电流强度" in parameters and "400" in parameters and "kA" in parameters
    assert "350000" in by_testid(today.text, "capacities") and "电解铝（原铝）" in by_testid(today.text, "capacities")
    assert "铝液电解交流电耗" in by_testid(today.text, "declarations") and "13000" in by_testid(today.text, "declarations")
    history = by_testid(today.text, "status-history")
    assert history.count("<tr>") == 3 and "限电停槽" in history and "2012-05-01" in history and "2020-01-01" in history
    assert 'data-testid="unit-verdicts"' in today.text and "本单元合规结论" in today.text
    assert f'href="/compliance/units/{unit_id}?as_of=' in today.text
    assert "首次登记" in by_testid(today.text, "version-history")
    in_2015 = client.get(f"/registry/units/{unit_id}", params={"as_of": "2015-06-30"})
    assert "运行" in by_testid(in_2015.text, "unit-status") and "· 2015-06-30" in in_2015.text
    # Before commissioning nothing was in force yet; the dated records stay listed in full below.
    in_2011 = client.get(f"/registry/units/{unit_id}", params={"as_of": "2011-01-01"})
    assert "暂无记录" in by_testid(in_2011.text, "parameters") and "400" in by_testid(in_2011.text, "parameter-history")


def test_an_enterprise_user_sees_only_its_own_enterprise(log_in, world):
    client = log_in("km_user")
    assert enterprise_names(client.get("/registry/enterprises").text) == [world.kunming["name"]]
    assert unit_ids(client.get("/registry/units").text) == [world.kunming_unit["id"]]
    assert client.get(f"/registry/enterprises/{world.kunming['id']}").status_code == 200
    for path in (f"/registry/enterprises/{world.honghe['id']}", f"/registry/units/{world.honghe_unit['id']}",
                 f"/registry/sites/{world.honghe_site['id']}"):
        refused = client.get(path)
        assert refused.status_code == 404, path
        assert "未找到该记录，或您无权查看" in refused.text and world.honghe["name"] not in refused.text
    assert by_testid(client.get("/").text, "count-enterprises") == "1"
    foreign = client.get("/registry/units", params={"enterprise_id": world.honghe["id"]})
    assert foreign.status_code == 404 and unit_ids(foreign.text) == []


def test_a_regulator_does_not_see_another_province(log_in, world):
    client = log_in("sichuan")
    assert enterprise_names(client.get("/registry/enterprises").text) == [world.sichuan["name"]]
    assert client.get(f"/registry/units/{world.kunming_unit['id']}").status_code == 404
    assert client.get(f"/registry/enterprises/{world.sichuan['id']}").status_code == 200


def test_english_switch_shows_english_labels_and_sticks(log_in, world):
    client = log_in("yunnan")
    listing = client.get("/registry/enterprises", params={"lang": "en"})
    assert listing.status_code == 200 and "<h1>Enterprises</h1>" in listing.text and "private" in listing.text
    assert "Yunnan · Kunming" in listing.text
    unit = client.get(f"/registry/units/{world.kunming_unit['id']}")  # the language cookie carries the choice on
    assert "electrolytic aluminium (prebaked cells)" in by_testid(unit.text, "unit-process")
    assert "idle" in by_testid(unit.text, "unit-status") and "Status history" in unit.text and "电解铝预焙槽" not in unit.text
    overview = client.get("/")
    assert "Registered capacity by province and metal" in overview.text and "aluminium" in by_testid(overview.text, "capacity-table")
    chinese = client.get("/registry/enterprises", params={"lang": "zh-CN"})
    assert "<h1>企业</h1>" in chinese.text and "私营" in chinese.text


@pytest.mark.parametrize(
    ("path", "params", "shown"),
    [
        ("/registry/enterprises", {"process_type": "alchemy"}, "未知的工艺类型"),
        ("/registry/enterprises", {"metal": "gold"}, "未知的金属"),
        ("/registry/enterprises", {"status": "dormant"}, "未知的状态"),
        ("/registry/enterprises", {"province": "53"}, "6 位行政区划代码"),
        ("/registry/enterprises", {"sort": "secret"}, "不能按"),
        ("/registry/enterprises", {"page": "abc"}, "正整数"),
        ("/registry/enterprises", {"q": "x" * 200}, "搜索词"),
        ("/registry/units", {"as_of": "2020-13-45"}, "YYYY-MM-DD"),
        ("/registry/units", {"enterprise_id": "abc"}, "整数编号"),
        ("/registry/units", {"prefecture": "abcdef"}, "6 位行政区划代码"),
        ("/", {"as_of": "yesterday"}, "YYYY-MM-DD"),
    ],
)
def test_bad_filter_input_is_shown_on_the_page_as_422(log_in, path, params, shown):
    response = log_in("yunnan").get(path, params=params)
    assert response.status_code == 422, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert 'class="error"' in response.text and shown in response.text
    assert '<form class="filters"' in response.text  # the form stays, to correct the input


def test_a_malformed_unit_date_keeps_the_unit_page_with_the_error(log_in, world):
    page = log_in("yunnan").get(f"/registry/units/{world.kunming_unit['id']}", params={"as_of": "someday", "lang": "en"})
    assert page.status_code == 422 and "is not a date (YYYY-MM-DD)" in page.text
    assert 'data-testid="unit-process"' in page.text and 'value="someday"' in page.text


def test_ids_that_cannot_exist_are_404_pages_not_errors(log_in):
    client = log_in("root")
    for path in ("/registry/enterprises/abc", "/registry/enterprises/99999999999999999999", "/registry/units/0",
                 "/registry/units/-1", "/registry/sites/999999", "/registry/units/2147483648"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html"), path


def test_the_language_switch_keeps_the_filters_sort_and_page(log_in, world):
    page = log_in("yunnan").get("/registry/enterprises", params={"metal": "aluminium", "sort": "name", "q": "测试"})
    switch = re.search(r'href="([^"]+)"[^>]*data-testid="language-switch"', page.text).group(1).replace("&amp;", "&")
    followed = log_in("yunnan").get(switch)
    assert followed.status_code == 200 and "<h1>Enterprises</h1>" in followed.text
    assert str(followed.url).split("?", 1)[1].split("&") == ["metal=aluminium", "sort=name", "q=%E6%B5%8B%E8%AF%95", "lang=en"]
    back = re.search(r'href="([^"]+)"[^>]*data-testid="language-switch"', followed.text).group(1).replace("&amp;", "&")
    assert back.endswith("lang=zh-CN") and "metal=aluminium" in back and back.count("lang=") == 1


def test_refusals_outside_the_registry_are_pages_for_browsers_and_json_for_the_api(log_in, world):
    client = log_in("yunnan")
    for path, status, shown in (("/monitoring/points/abc", 422, "point_id"), ("/no-such-page", 404, "未找到"),
                                ("/policy/provisions/no-such-rule", 404, "no-such-rule")):
        response = client.get(path, headers=HTML)
        assert response.status_code == status, path
        assert response.headers["content-type"].startswith("text/html"), path
        assert 'class="error"' in response.text and shown in response.text, path
    english = client.get("/no-such-page", headers=HTML, params={"lang": "en"})
    assert english.status_code == 404 and "Not Found" in english.text and "未找到" not in english.text
    api = client.get("/api/registry/enterprises/abc", headers=HTML)
    assert api.status_code == 422 and api.headers["content-type"].startswith("application/json")
    assert api.json()["detail"][0]["field"]


def test_vocabulary_labels_with_commas_keep_their_whole_english_name():
    from ingot.registry.vocabulary import vocabulary

    assert vocabulary().label("ownership_types", "hmt_invested", "en") == "Hong Kong, Macao or Taiwan invested"
