"""Through Debian's chromium, against `ingot demo` as `make demo` runs it: a regulator watches live monitoring data
and works an alarm; two demo members trade a demo receipt and the trade settles.

Under CI=true the tests must run; elsewhere they skip when chromium is absent.
"""
from __future__ import annotations

import re
import time

import pytest

from tests.browser_support import CHROMIUM_ARGS, require_chromium

CHROMIUM = require_chromium()
pytestmark = pytest.mark.browser

from ingot.registry.demo import DEMO_PASSWORD as PASSWORD  # noqa: E402 - after the skip, like the tests themselves


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _logged_in(browser, base: str, username: str):
    page = browser.new_context().new_page()
    page.goto(base + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    # the form's POST and its redirect, not the login page's own load
    with page.expect_response(lambda response: response.request.method == "POST") as answered:
        with page.expect_navigation():
            page.click("button[type=submit]")
    assert "/login" not in page.url, (f"{username} could not log in: the POST was answered {answered.value.status}: "
                                      f"{page.inner_text('body')[:2000]}")
    return page


def test_regulator_watches_live_monitoring_and_acknowledges_an_alarm(live_demo, browser):
    from playwright.sync_api import expect

    page = _logged_in(browser, live_demo, "reg_yunnan")
    # The simulated fleet backfills the last hours within seconds of start-up; wait for its packets to land.
    deadline = time.monotonic() + 180
    while True:
        page.goto(live_demo + "/monitoring")
        times = page.locator("[data-testid=monitoring-points] tbody tr td:nth-child(6)").all_inner_texts()
        reporting = [text for text in times if re.match(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", text)]
        if reporting or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert reporting, "no demo point has reported to the live receiver"
    page.locator("[data-testid=monitoring-points] tbody tr a").first.click()
    expect(page.locator("[data-testid^=chart-]").first).to_be_visible()
    assert page.locator("svg").count() >= 1

    deadline = time.monotonic() + 180
    while True:
        page.goto(live_demo + "/monitoring/alarms")
        buttons = page.locator("[data-testid=alarm-inbox] form[action$='/acknowledge'] button")
        if buttons.count() or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert buttons.count(), "the live fleet's exceedances raised no open alarm for the regulator"
    row = page.locator("[data-testid=alarm-inbox] tbody tr").filter(has=page.locator("form[action$='/acknowledge']")).first
    alarm_id = row.get_attribute("data-alarm")
    row.locator("form[action$='/acknowledge'] input[name=note]").fill("已通知企业核查 / enterprise asked to check")
    # wait for the acknowledgement's POST to be answered: a goto while it is under way would abort it
    with page.expect_response(lambda response: response.url.endswith("/acknowledge")) as answered:
        with page.expect_navigation():
            row.locator("form[action$='/acknowledge'] button").click()
    assert answered.value.status == 303, f"the acknowledgement was answered {answered.value.status}: {page.content()[-3000:]}"
    page.goto(live_demo + "/monitoring/alarms?state=acknowledged")
    handled = page.locator(f"[data-testid=alarm-inbox] tr[data-alarm='{alarm_id}']")
    expect(handled).to_contain_text("reg_yunnan")
    expect(handled).to_contain_text("已通知企业核查")  # the note is kept as typed, in either UI language
    expect(handled.locator("form[action$='/close'] button")).to_be_visible()


def test_two_members_trade_a_demo_receipt_through_the_browser(live_demo, browser):
    from playwright.sync_api import expect

    seller = _logged_in(browser, live_demo, "m001")
    seller.goto(live_demo + "/market/products/IN99995")
    form = seller.locator("[data-testid=order-form]")
    form.locator("select[name=side]").select_option("S")
    form.locator("input[name=lots]").fill("1")
    form.locator("input[name=price_yuan]").fill("1501")
    form.locator("select[name=receipt]").select_option(index=0)
    form.locator("button[type=submit]").click()
    expect(seller.locator("[data-testid=order-placed]")).to_be_visible()

    buyer = _logged_in(browser, live_demo, "trader")
    buyer.goto(live_demo + "/market/products/IN99995")
    expect(buyer.locator("[data-testid=depth]")).to_contain_text("1,501.00")
    form = buyer.locator("[data-testid=order-form]")
    form.locator("select[name=side]").select_option("B")
    form.locator("input[name=lots]").fill("1")
    form.locator("input[name=price_yuan]").fill("1501")
    form.locator("button[type=submit]").click()
    expect(buyer.locator("[data-testid=order-placed]")).to_be_visible()
    placed = buyer.locator("[data-testid=order-placed]").inner_text().rsplit("#", 1)[1].strip()
    row = buyer.locator("[data-testid=orders] tbody tr", has_text=placed).first
    expect(row).to_contain_text("filled")
    # The trade delivered a receipt to the buyer: it is listed among the buyer's receipts.
    trade = buyer.locator("table").last.locator("tbody tr", has_text="1,501.00").first
    delivered = trade.locator("a").first.inner_text()
    buyer.goto(live_demo + "/market/receipts")
    expect(buyer.locator("body")).to_contain_text(delivered)
