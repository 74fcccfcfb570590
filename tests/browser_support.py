"""What the browser tests share: Debian's chromium found by its path, the flags it needs here, the skip rule.

Playwright drives the system chromium by its executable path (its own browser download cannot work here). Under
CI=true the browser tests must run; elsewhere they skip when chromium is absent.
"""
from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Without the background-networking flags chromium keeps dialling out, and this machine refuses every connection.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def require_chromium() -> str:
    """Call at import time of a browser test module: skips it without chromium, except under CI where that fails."""
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            raise RuntimeError("CI=true but no chromium executable was found: .ci/run must install Debian's chromium")
        pytest.skip("chromium not installed (apt-get install chromium); the browser tests run under CI", allow_module_level=True)
    return CHROMIUM
