"""A regulator logs in through Debian's chromium, finds a known demo enterprise and opens one of its units.

Playwright drives the system chromium by its executable path (its own browser download cannot work here).
Under CI=true the test must run; elsewhere it skips when chromium is absent.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.browser

if CHROMIUM is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI=true but no chromium executable was found: .ci/run must install Debian's chromium")
    pytest.skip("chromium not installed (apt-get install chromium); the browser test runs under CI", allow_module_level=True)

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("browser")
    env = {
        **os.environ,
        "INGOT_DATA_DIR": str(data_dir),
        "INGOT_DATABASE_URL": f"sqlite:///{data_dir / 'ingot.db'}",
        "INGOT_SECRET_KEY": "browser-test-secret-key-long-enough-for-hs256",
    }
    env.pop("INGOT_TEST_DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "ingot.cli", "demo", "--no-serve"], env=env, check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ingot.cli", "serve", "--port", str(port)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if server.poll() is not None:
                raise RuntimeError("the demo server exited before it listened")
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


def test_regulator_finds_enterprise_and_opens_unit(demo_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from ingot.registry.demo import DEMO_ENTERPRISE_NAME, DEMO_PASSWORD, DEMO_REGULATOR

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(demo_server + "/registry/enterprises")
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
