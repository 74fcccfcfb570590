"""Jinja2 rendering shared by every context's pages: language, principal, navigation, formatting."""
from __future__ import annotations

from importlib.resources import files

from fastapi import Request
from fastapi.templating import Jinja2Templates

from ingot.core.auth import ROLES, Principal
from ingot.core.timeutil import shown, utcnow
from ingot.web.i18n import label, translate

NAVIGATION = (
    ("nav_overview", "/"),
    ("nav_enterprises", "/registry/enterprises"),
    ("nav_units", "/registry/units"),
    ("nav_policy", "/policy"),
    ("nav_compliance", "/compliance"),
    ("nav_monitoring", "/monitoring"),
    ("nav_market", "/market"),
    ("nav_audit", "/audit"),
)
_template_dirs: list[str] = [str(files("ingot.web") / "templates")]
templates = Jinja2Templates(directory=_template_dirs)
templates.env.filters["shown"] = shown


def add_template_dir(path) -> None:
    """Contexts keep their own templates beside their pages; they all extend base.html."""
    if str(path) not in _template_dirs:
        _template_dirs.append(str(path))
        templates.env.loader.searchpath.append(str(path))


def available_paths(request: Request) -> set[str]:
    return {getattr(route, "path", "") for route in request.app.routes}


def render(request: Request, template: str, principal: Principal | None, lang: str, status_code: int = 200, **context):
    paths = available_paths(request)
    nav = [(key, href) for key, href in NAVIGATION if href in paths]
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
            **context,
        },
        status_code=status_code,
    )
    if request.query_params.get("lang") in ("zh-CN", "en"):
        response.set_cookie("lang", request.query_params["lang"], max_age=365 * 24 * 3600, samesite="lax")
    return response
