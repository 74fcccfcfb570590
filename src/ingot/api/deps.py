"""Request-scoped dependencies: one unit of work per request, the caller's principal, the language."""
from __future__ import annotations

from typing import Annotated, Iterator

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from ingot.core.auth import Principal, principal_from_token, token_user_id
from ingot.core.db import session_factory
from ingot.core.errors import Forbidden, NotAuthenticated

TOKEN_COOKIE = "ingot_token"

# Record ids are 32-bit on every backend; a larger number in a path or query names no record and must be refused
# at the boundary rather than reach the database driver.
MAX_RECORD_ID = 2**31 - 1
RecordId = Annotated[int, Path(ge=1, le=MAX_RECORD_ID, description="记录编号 / record id")]
OptionalRecordId = Annotated[int | None, Query(ge=1, le=MAX_RECORD_ID, description="记录编号 / record id")]


def get_session() -> Iterator[Session]:
    session = session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# The unit of work ends with the handler, before the response is sent: a client is told "done" only once the commit
# has succeeded, and a commit that fails (a conflict, a busy database) is answered as such. (FastAPI's default scope
# for a dependency with yield would run the commit after the response had gone.)
UNIT_OF_WORK = Depends(get_session, scope="function")


def bearer_or_cookie(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(TOKEN_COOKIE)


def current_principal(request: Request, session: Session = UNIT_OF_WORK) -> Principal:
    token = bearer_or_cookie(request)
    if not token:
        raise NotAuthenticated("请先登录", "authentication required")
    return principal_from_token(session, token)


async def token_caller(request: Request) -> int:
    """The user id a request's verified token names, checked on the event loop (no database, no worker thread);
    the user itself is read in the request's transaction (at the order desk, `core.group_commit`, for the order
    endpoints). 401 without a valid token."""
    token = bearer_or_cookie(request)
    if not token:
        raise NotAuthenticated("请先登录", "authentication required")
    return token_user_id(token)


def require_roles(*roles: str):
    def check(principal: Principal = Depends(current_principal)) -> Principal:
        if principal.role not in roles:
            raise Forbidden("当前角色无权执行此操作", f"role '{principal.role}' may not do this")
        return principal

    return check


def language(request: Request) -> str:
    chosen = request.query_params.get("lang") or request.cookies.get("lang")
    if chosen in ("zh-CN", "en"):
        return chosen
    accept = request.headers.get("accept-language", "")
    return "en" if accept.startswith("en") else "zh-CN"
