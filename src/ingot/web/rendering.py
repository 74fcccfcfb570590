"""Jinja2 rendering shared by every context's pages: language, principal, navigation, formatting."""
from __future__ import annotations

from importlib.resources import files
from urllib.parse import urlencode

from fastapi import Request
from fastapi.templating import Jinja2Templates

from ingot.core.auth import ROLES, Principal
from ingot.core.timeutil import shown, utcnow
from ingot.web.i18n import label, translate

# (label key, path, who is offered the link): a link the user may not follow is not shown.
NAVIGATION = (
    ("nav_overview", "/", None),
    ("nav_enterprises", "/registry/enterprises", None),
    ("nav_units", "/registry/units", None),
    ("nav_policy", "/policy", None),
    ("nav_compliance", "/compliance", None),
    ("nav_monitoring", "/monitoring", None),
    ("nav_market", "/market", None),
    ("nav_audit", "/audit", lambda principal: principal.can_read_audit),
)
_template_dirs: list[str] = [str(files("ingot.web") / "templates")]
templates = Jinja2Templates(directory=_template_dirs)
templates.env.filters["shown"] = shown


def add_template_dir(path) -> None:
    """Contexts keep their own templates beside their pages; they all extend base.html."""
    if str(path) not in _template_dirs:
        _template_dirs.append(str(path))
        templates.env.loader.searchpath.append(str(path))


def _route_paths(routes, prefix: str = ""):
    for route in routes:
        path = getattr(route, "path", None)
        if path is not None:
            yield prefix + path
        # Newer FastAPI keeps an included router as one wrapper route (holding `original_router`) instead of
        # copying its routes into the app, so the paths it serves are found one level down.
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from _route_paths(inner.routes, prefix + (getattr(context, "prefix", "") or ""))


def available_paths(request: Request) -> set[str]:
    """Every path template the running app serves, e.g. '/registry/units/{unit_id}'."""
    return set(_route_paths(request.app.routes))


def language_switch_href(request: Request, lang: str) -> str:
    """The same page in the other language, keeping every filter, sort and page the user has chosen."""
    query = [(key, value) for key, value in request.query_params.multi_items() if key != "lang"]
    query.append(("lang", "zh-CN" if lang == "en" else "en"))
    return f"{request.url.path}?{urlencode(query)}"


def render(request: Request, template: str, principal: Principal | None, lang: str, status_code: int = 200, **context):
    paths = available_paths(request)
    nav = [(key, href) for key, href, offered_to in NAVIGATION
           if href in paths and (offered_to is None or (principal is not None and offered_to(principal)))]
    role = ROLES.get(principal.role, (principal.role, principal.role)) if principal else ("", "")
    response = templates.TemplateResponse(
        request,
        template,
        {
            "principal": principal,
            "lang": lang,
            "t": lambda key: translate(key, lang),
            "label": lambda entry, fallback="": label(entry, lang, fallback),
            "nav": nav,
            "role_label": role[1] if lang == "en" else role[0],
            "now": shown(utcnow()),
            "language_switch_href": language_switch_href(request, lang),
            **context,
        },
        status_code=status_code,
    )
    if request.query_params.get("lang") in ("zh-CN", "en"):
        response.set_cookie("lang", request.query_params["lang"], max_age=365 * 24 * 3600, samesite="lax")
    return response
