"""Monitoring pages: behind login, scoped, charts with limit lines, alarm buttons that work."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from ingot.core.auth import create_user
from ingot.core.timeutil import utcnow
from ingot.monitoring.storage import IngestRecord, Reading, write_batch
from tests.conftest import login

from .world import build_world


@pytest.fixture
def pages(client, session):
    world = build_world(session)
    create_user(session, username="yn_reg", password="regulator-1", role="regulator", division_code="530000")
    create_user(session, username="hh_ent", password="enterprise-2", role="enterprise", enterprise_id=world.enterprises["honghe"])
    point_id = world.points["kunming"]["id"]
    hour = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    records = [IngestRecord(received_at=hour + timedelta(minutes=i), text="m", accepted=True, point_id=point_id, kind="minute",
                            data_time=hour + timedelta(minutes=i),
                            readings=(Reading("a21026", {"avg": Decimal(300 + i)}, "N"),)) for i in range(60)]
    records.append(IngestRecord(received_at=hour + timedelta(hours=1), text="h", accepted=True, point_id=point_id, kind="hour",
                                data_time=hour, readings=(Reading("a21026", {"avg": Decimal("330"), "zs_avg": Decimal("410")}, "N"),)))
    write_batch(session, records)
    session.commit()
    return client, world, {"yn_reg": login(client, "yn_reg", "regulator-1"), "hh_ent": login(client, "hh_ent", "enterprise-2")}


def test_pages_need_login(client):
    response = client.get("/monitoring", headers={"accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_overview_lists_scoped_points_and_filters(pages):
    client, world, heads = pages
    page = client.get("/monitoring", headers=heads["yn_reg"]).text
    assert "监测kunming冶炼有限公司" in page and "监测honghe冶炼有限公司" in page and "监测sichuan" not in page
    assert "超标" in page  # the Kunming point has an open exceedance alarm
    filtered = client.get("/monitoring", params={"enterprise_id": world.enterprises["honghe"]}, headers=heads["yn_reg"]).text
    assert "888888800000000000000002" in filtered and "888888800000000000000001" not in filtered
    english = client.get("/monitoring?lang=en", headers=heads["yn_reg"]).text
    assert "Online monitoring" in english
    # The overview follows the devices' minute reports: a script reloads it each minute unless a form is being
    # filled in, and without JavaScript a plain meta refresh does.
    assert '<script src="/static/auto-refresh.js" data-seconds="60" defer></script>' in page
    assert '<noscript><meta http-equiv="refresh" content="60"></noscript>' in page
    script = client.get("/static/auto-refresh.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "activeElement" in script.text and "location.reload" in script.text
    own = client.get("/monitoring", headers=heads["hh_ent"]).text
    assert "888888800000000000000002" in own and "888888800000000000000001" not in own


def test_point_page_has_charts_with_limit_line(pages):
    client, world, heads = pages
    page = client.get(f"/monitoring/points/{world.points['kunming']['id']}", headers=heads["yn_reg"]).text
    assert page.count("<svg") >= 2 and 'stroke-dasharray="6 4"' in page and "GB 25467-2010" in page
    assert client.get(f"/monitoring/points/{world.points['kunming']['id']}", headers=heads["hh_ent"]).status_code == 404


def test_alarm_inbox_buttons(pages):
    client, world, heads = pages
    assert "监测kunming" not in client.get("/monitoring/alarms", headers=heads["hh_ent"]).text
    inbox = client.get("/monitoring/alarms", headers=heads["yn_reg"]).text
    assert "/acknowledge" in inbox
    alarm_id = inbox.split('data-alarm="')[1].split('"')[0]
    done = client.post(f"/monitoring/alarms/{alarm_id}/acknowledge", data={"note": "已通知企业"}, headers=heads["yn_reg"],
                       follow_redirects=False)
    assert done.status_code == 303
    acknowledged = client.get("/monitoring/alarms?state=acknowledged", headers=heads["yn_reg"]).text
    assert "已通知企业" in acknowledged and "yn_reg" in acknowledged
    assert client.post(f"/monitoring/alarms/{alarm_id}/explode", headers=heads["yn_reg"]).status_code == 422
