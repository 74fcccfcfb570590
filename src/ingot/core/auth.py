"""Users, roles, password hashing, tokens and the scope every query is filtered by."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Boolean, ForeignKey, Integer, String, bindparam, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ingot.core.config import get_settings
from ingot.core.db import Base, UTCDateTime
from ingot.core.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from ingot.core.timeutil import utcnow

ADMIN = "admin"
REGULATOR = "regulator"
ENTERPRISE = "enterprise"
AUDITOR = "auditor"
ROLES = {
    ADMIN: ("管理员", "administrator"),
    REGULATOR: ("监管人员", "regulator"),
    ENTERPRISE: ("企业用户", "enterprise user"),
    AUDITOR: ("审计人员", "auditor"),
    "market_operator": ("交易中心", "trading centre operator"),
    "member": ("会员", "market member"),
    "warehouse": ("仓库", "warehouse"),
    "reserve_agency": ("储备机构", "reserve agency"),
}

_hasher = PasswordHasher()
_USERNAME = re.compile(r"^[A-Za-z0-9_.\-]{3,64}$")
MIN_PASSWORD_LENGTH = 8


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    # A regulator's scope: a province (e.g. 530000) or a prefecture (e.g. 530100) GB/T 2260 code.
    division_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprises.id"), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def division_prefix(code: str) -> str:
    """The GB/T 2260 prefix that all divisions inside `code` share (5300 00 -> '53', 5301 00 -> '5301')."""
    if code.endswith("0000"):
        return code[:2]
    if code.endswith("00"):
        return code[:4]
    return code


@dataclass(frozen=True)
class Principal:
    """Who is asking, and what they may see."""

    user_id: int
    username: str
    role: str
    division_code: str | None = None
    enterprise_id: int | None = None

    @property
    def sees_everything(self) -> bool:
        return self.role in (ADMIN, AUDITOR)

    @property
    def can_read_audit(self) -> bool:
        return self.role in (ADMIN, AUDITOR, REGULATOR)

    @property
    def can_write_registry(self) -> bool:
        return self.role in (ADMIN, REGULATOR, ENTERPRISE)

    def sees_division(self, code: str | None) -> bool:
        if self.sees_everything:
            return True
        if self.role == REGULATOR and self.division_code and code:
            return code.startswith(division_prefix(self.division_code))
        return False

    def sees_enterprise(self, enterprise_id: int | None, division_code: str | None) -> bool:
        if self.role == ENTERPRISE:
            return enterprise_id is not None and enterprise_id == self.enterprise_id
        return self.sees_division(division_code)


SYSTEM = Principal(user_id=0, username="system", role=ADMIN)


def principal_of(user: User) -> Principal:
    return Principal(user.id, user.username, user.role, user.division_code, user.enterprise_id)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: str,
    display_name: str = "",
    division_code: str | None = None,
    enterprise_id: int | None = None,
    actor: Principal = SYSTEM,
) -> User:
    from ingot.core.audit import record_change

    if not _USERNAME.match(username or ""):
        raise InvalidInput("用户名须为 3–64 位字母、数字或 _ . -", "username must be 3-64 letters, digits or _ . -", field="username")
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"密码至少 {MIN_PASSWORD_LENGTH} 位", f"password must have at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    if role not in ROLES:
        raise InvalidInput(f"未知角色：{role}", f"unknown role: {role}", field="role")
    if role == REGULATOR and not (division_code and re.fullmatch(r"\d{6}", division_code)):
        raise InvalidInput("监管人员须指定省或市州的行政区划代码", "a regulator needs a province or prefecture division code", field="division_code")
    if role == ENTERPRISE and enterprise_id is None:
        raise InvalidInput("企业用户须指定所属企业", "an enterprise user needs its enterprise", field="enterprise_id")
    if role != ENTERPRISE:
        enterprise_id = None
    if role != REGULATOR:
        division_code = None
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"用户名已存在：{username}", f"username already exists: {username}", field="username")
    if enterprise_id is not None:
        from ingot.registry.models import Enterprise

        if session.get(Enterprise, enterprise_id) is None:
            raise InvalidInput(f"企业不存在：{enterprise_id}", f"no such enterprise: {enterprise_id}", field="enterprise_id")
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role,
        division_code=division_code,
        enterprise_id=enterprise_id,
    )
    session.add(user)
    session.flush()
    record_change(session, actor, "user", user.id, "create", None, user_view(user), division_code=division_code, enterprise_id=enterprise_id)
    return user


def user_view(user: User) -> dict:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "division_code": user.division_code,
        "enterprise_id": user.enterprise_id,
        "disabled": user.disabled,
    }


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def set_disabled(session: Session, username: str, disabled: bool, actor: Principal = SYSTEM) -> User:
    from ingot.core.audit import record_change

    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"用户不存在：{username}", f"no such user: {username}", field="username")
    before = user_view(user)
    user.disabled = disabled
    session.flush()
    record_change(session, actor, "user", user.id, "disable" if disabled else "enable", before, user_view(user))
    return user


def authenticate(session: Session, username: str, password: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    failure = NotAuthenticated("用户名或密码错误", "wrong username or password")
    if user is None or user.disabled:
        raise failure
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise failure from None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def issue_token(user: User) -> tuple[str, datetime]:
    settings = get_settings()
    expires = utcnow() + timedelta(minutes=settings.token_minutes)
    token = jwt.encode({"sub": str(user.id), "exp": expires, "role": user.role}, settings.secret_key, algorithm="HS256")
    return token, expires


def token_user_id(token: str) -> int:
    """The user a token names, once its signature and expiry are checked; NotAuthenticated otherwise.

    A token's claims are a pure function of the token and the signing key, so a verified token is remembered (by
    key and token) until it expires: every request of a session would otherwise verify the same signature and parse
    the same claims again. Only the check of the signature is saved; the user is still read on every request, so a
    disabled user is refused on the next one."""
    secret = get_settings().secret_key
    known = _VERIFIED.get((secret, token))
    if known is not None:
        if time.time() < known[1]:
            return known[0]
        _VERIFIED.pop((secret, token), None)
        raise _expired()
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"])
        user_id = int(claims["sub"])
        expires = float(claims["exp"]) if "exp" in claims else float("inf")
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        raise _expired() from None
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[(secret, token)] = (user_id, expires)
    return user_id


def _expired() -> NotAuthenticated:
    return NotAuthenticated("登录已失效，请重新登录", "invalid or expired token, please log in again")


# (signing key, token) -> (user id, expiry as a POSIX time); bounded, emptied when full.
_VERIFIED: dict[tuple[str, str], tuple[int, float]] = {}
_VERIFIED_MAX = 4096


def principal_of_user_id(session: Session, user_id: int) -> Principal:
    """The principal of an enabled user, read on every request; NotAuthenticated for a missing or disabled one."""
    row = session.connection().execute(_PRINCIPAL_BY_ID, {"user_id": user_id}).first()
    if row is None or row.disabled:
        raise NotAuthenticated("账号不存在或已停用", "account missing or disabled")
    return Principal(row.id, row.username, row.role, row.division_code, row.enterprise_id)


def principal_from_token(session: Session, token: str) -> Principal:
    return principal_of_user_id(session, token_user_id(token))


# Every authenticated request runs this; built once, because building and keying a statement (as `Session.get` does
# on each call) cost more than running it.
_PRINCIPAL_BY_ID = select(User.id, User.username, User.role, User.division_code, User.enterprise_id,
                          User.disabled).where(User.id == bindparam("user_id"))
