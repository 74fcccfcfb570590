"""Every demo role walks the web UI from its start page, following the links the pages offer it, against `ingot demo`
as `make demo` runs it: no page answers with a server error, and no link a page shows leads nowhere (404) or to a
page the same user may not open (403). Bounded: a few URLs per route template, so the walk covers every kind of page
without visiting every enterprise.
"""
from __future__ import annotations

import re
from collections import deque
from html import unescape
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx
import pytest

from ingot.registry.demo import DEMO_PASSWORD

ROLES = ("admin", "auditor", "reg_yunnan", "reg_kunming", "ent1", "centre", "m001", "client1", "wh_km", "reserve")
PER_TEMPLATE = 3
MAX_PAGES = 250
# Links that act rather than show, or stream: following them would change the demo or never end.
SKIPPED = ("/logout", "/static/", "/api/market/stream", "/docs", "/redoc", "/openapi.json")
HREF = re.compile(r'href="([^"#]*)"')
NUMBER = re.compile(r"/\d+(?=/|$)")


def _template(path: str) -> str:
    """/registry/units/123/x → /registry/units/{n}/x: pages of one kind count together."""
    return NUMBER.sub("/{n}", path)


def _normal(url: str) -> str:
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "lang"]
    return parts.path + ("?" + urlencode(query) if query else "")


def _walk(base: str, username: str) -> tuple[int, list[str]]:
    problems: list[str] = []
    with httpx.Client(base_url=base, headers={"accept": "text/html"}, timeout=60) as client:
        login = client.post("/login", data={"username": username, "password": DEMO_PASSWORD, "next": "/"})
        assert login.status_code in (200, 303) and "ingot_token" in client.cookies, f"{username} could not log in"
        seen: set[str] = set()
        per_template: dict[str, int] = {}
        queue = deque([("/", "login")])
        visited = 0
        while queue and visited < MAX_PAGES:
            url, found_on = queue.popleft()
            key = _normal(url)
            template = _template(urlsplit(key).path) + ("?" if "?" in key else "")
            if key in seen or per_template.get(template, 0) >= PER_TEMPLATE:
                continue
            seen.add(key)
            per_template[template] = per_template.get(template, 0) + 1
            response = client.get(url, follow_redirects=True)
            visited += 1
            if response.status_code >= 500 or response.status_code in (403, 404):
                problems.append(f"{response.status_code} {url} (linked from {found_on})")
                continue
            if "text/html" not in response.headers.get("content-type", ""):
                continue
            for href in HREF.findall(response.text):
                target = urljoin(str(response.url), unescape(href))
                parts = urlsplit(target)
                if parts.netloc != urlsplit(base).netloc or parts.path.startswith(SKIPPED):
                    continue
                queue.append((parts.path + ("?" + parts.query if parts.query else ""), url))
    return visited, problems


@pytest.mark.parametrize("username", ROLES)
def test_every_link_a_role_is_shown_opens_a_page(live_demo, username):
    visited, problems = _walk(live_demo, username)
    assert visited >= 3, f"{username} reached only {visited} page(s)"
    assert not problems, f"{username}: " + "; ".join(problems)
