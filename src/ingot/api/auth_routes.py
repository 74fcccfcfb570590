from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel
from sqlalchemy.orm import Session

from ingot.api.deps import UNIT_OF_WORK, current_principal, require_roles
from ingot.core import auth
from ingot.core.audit import read_audit_log, record_change
from ingot.core.auth import ADMIN, AUDITOR, REGULATOR, Principal, principal_of

router = APIRouter(prefix="/api", tags=["auth"])


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    division_code: str | None
    enterprise_id: int | None
    disabled: bool


class UserIn(BaseModel):
    username: str
    password: str
    role: str
    display_name: str = ""
    division_code: str | None = None
    enterprise_id: int | None = None


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    entity: str
    entity_id: str
    action: str
    before: dict | None
    after: dict | None


@router.post("/auth/token", response_model=TokenOut)
def login(form: OAuth2PasswordRequestForm = Depends(), session: Session = UNIT_OF_WORK) -> TokenOut:
    user = auth.authenticate(session, form.username, form.password)
    token, expires = auth.issue_token(user)
    record_change(session, principal_of(user), "session", user.id, "login", None, None, division_code=user.division_code, enterprise_id=user.enterprise_id)
    return TokenOut(access_token=token, expires_at=expires)


@router.get("/auth/me", response_model=UserOut)
def me(principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK) -> UserOut:
    return UserOut(**auth.user_view(session.get(auth.User, principal.user_id)))


@router.get("/users", response_model=list[UserOut])
def users(_admin: Principal = Depends(require_roles(ADMIN)), session: Session = UNIT_OF_WORK) -> list[UserOut]:
    return [UserOut(**auth.user_view(user)) for user in auth.list_users(session)]


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: UserIn, admin: Principal = Depends(require_roles(ADMIN)), session: Session = UNIT_OF_WORK) -> UserOut:
    user = auth.create_user(session, actor=admin, **body.model_dump())
    return UserOut(**auth.user_view(user))


@router.post("/users/{username}/disable", response_model=UserOut)
def disable_user(username: str, admin: Principal = Depends(require_roles(ADMIN)), session: Session = UNIT_OF_WORK) -> UserOut:
    return UserOut(**auth.user_view(auth.set_disabled(session, username, True, actor=admin)))


@router.get("/audit", response_model=list[AuditOut])
def audit(
    entity: str | None = None,
    entity_id: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    principal: Principal = Depends(require_roles(ADMIN, AUDITOR, REGULATOR)),
    session: Session = UNIT_OF_WORK,
) -> list[AuditOut]:
    entries = read_audit_log(session, principal, entity=entity, entity_id=entity_id, limit=limit, offset=offset)
    return [AuditOut.model_validate(entry, from_attributes=True) for entry in entries]
