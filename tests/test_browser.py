"""A regulator logs in through Debian's chromium, finds a known demo enterprise and opens one of its units.

The server is `ingot demo` as `make demo` runs it (the `live_demo` fixture); tests/browser_support.py says how chromium
is found and when the test skips.
"""
from __future__ import annotations

import pytest

from tests.browser_support import CHROMIUM_ARGS, require_chromium

CHROMIUM = require_chromium()
pytestmark = pytest.mark.browser


def test_regulator_finds_enterprise_and_opens_unit(live_demo, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from ingot.registry.demo import DEMO_ENTERPRISE_NAME, DEMO_PASSWORD, DEMO_REGULATOR

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(live_demo + "/registry/enterprises")
        assert "/login" in page.url, "an anonymous visitor must be sent to the login page"
        page.fill("input[name=username]", DEMO_REGULATOR)
        page.fill("input[name=password]", DEMO_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/registry/enterprises**")
        page.fill("input[name=q]", DEMO_ENTERPRISE_NAME)
        page.click("form.filters button[type=submit]")
        page.get_by_role("link", name=DEMO_ENTERPRISE_NAME).first.click()
        expect(page.locator("h1")).to_contain_text(DEMO_ENTERPRISE_NAME)
        page.locator("a[data-testid=unit-link]").first.click()
        expect(page.locator("[data-testid=unit-process]")).to_be_visible()
        expect(page.locator("[data-testid=status-history] tr")).not_to_have_count(0)
        page.screenshot(path=str(tmp_path / "unit.png"))
        browser.close()
