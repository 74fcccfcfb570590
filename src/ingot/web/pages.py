"""The web shell: login, overview, and the audit log. Each context adds its own pages module."""
from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from importlib.resources import files
from sqlalchemy.orm import Session

from ingot.api.deps import TOKEN_COOKIE, UNIT_OF_WORK, current_principal, language
from ingot.core import auth
from ingot.core.audit import read_audit_log, record_change
from ingot.core.auth import Principal
from ingot.core.errors import DomainError
from ingot.web.rendering import render

router = APIRouter(include_in_schema=False)


def mount(app) -> None:
    app.mount("/static", StaticFiles(directory=str(files("ingot.web") / "static")), name="static")


def _safe_next(target: str | None) -> str:
    # Only local paths: a login form must never redirect to another site.
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@router.get("/login")
def login_form(request: Request, next: str = "/", lang: str = Depends(language)):
    return render(request, "login.html", None, lang, next=_safe_next(next), error=None)


@router.post("/login")
def login_submit(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
    lang: str = Depends(language),
    session: Session = UNIT_OF_WORK,
):
    try:
        user = auth.authenticate(session, username, password)
    except DomainError as error:
        return render(request, "login.html", None, lang, status_code=401, next=_safe_next(next), error=error.message(lang))
    token, expires = auth.issue_token(user)
    record_change(session, auth.principal_of(user), "session", user.id, "login", None, None,
                  division_code=user.division_code, enterprise_id=user.enterprise_id)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="lax", expires=expires)
    return response


@router.post("/logout")
def logout():
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE)
    return response


@router.get("/audit")
def audit_page(
    request: Request,
    entity: str | None = None,
    page: int = 1,
    principal: Principal = Depends(current_principal),
    lang: str = Depends(language),
    session: Session = UNIT_OF_WORK,
):
    page = max(page, 1)
    entries = read_audit_log(session, principal, entity=entity or None, limit=50, offset=(page - 1) * 50)
    return render(request, "audit.html", principal, lang, entries=entries, entity=entity or "", page=page)
