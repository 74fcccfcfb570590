"""Request-scoped dependencies: one unit of work per request, the caller's principal, the language."""
from __future__ import annotations

from typing import Annotated, Callable, Iterator, TypeVar

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from ingot.core.auth import Principal, principal_from_token, principal_of_user_id, token_user_id
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
    the user itself is read by `in_unit_of_work`, in the request's transaction. 401 without a valid token."""
    token = bearer_or_cookie(request)
    if not token:
        raise NotAuthenticated("请先登录", "authentication required")
    return token_user_id(token)


T = TypeVar("T")


def in_unit_of_work(user_id: int, work: Callable[[Session, Principal], T]) -> T:
    """One request's whole unit of work in one call, for endpoints that hand a single function to a worker thread
    (FastAPI runs each sync dependency in a thread of its own: the session, the principal and the handler were
    three hand-offs, the session's end a fourth). The caller's user is read (missing or disabled: 401), `work`
    runs, and the transaction commits before the result is returned, so nothing is answered before its commit; any
    exception, a refused commit included, rolls everything back."""
    session = session_factory()()
    try:
        result = work(session, principal_of_user_id(session, user_id))
        session.commit()
        return result
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


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
