"""Every failure becomes a specific, bilingual HTTP answer; nothing a client sends produces a bare 500."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingot.core.errors import DomainError, NotAuthenticated

log = logging.getLogger("ingot.api")

# zh-CN wording for pydantic's error types; the English comes from pydantic itself.
_ZH = {
    "missing": "缺少必填字段",
    "string_too_short": "字符串过短",
    "string_too_long": "字符串过长",
    "string_pattern_mismatch": "格式不正确",
    "int_parsing": "须为整数",
    "int_type": "须为整数",
    "float_parsing": "须为数字",
    "decimal_parsing": "须为十进制数",
    "decimal_type": "须为十进制数",
    "date_from_datetime_parsing": "须为日期（YYYY-MM-DD）",
    "date_parsing": "须为日期（YYYY-MM-DD）",
    "datetime_parsing": "须为带时区的时间",
    "timezone_aware": "时间须带时区",
    "bool_parsing": "须为布尔值",
    "enum": "不在允许的取值范围内",
    "literal_error": "不在允许的取值范围内",
    "greater_than": "数值过小",
    "greater_than_equal": "数值过小",
    "less_than": "数值过大",
    "less_than_equal": "数值过大",
    "json_invalid": "请求体不是有效的 JSON",
    "model_attributes_type": "请求体须为 JSON 对象",
    "dict_type": "须为对象",
    "list_type": "须为列表",
    "string_type": "须为字符串",
    "value_error": "取值无效",
    "extra_forbidden": "不允许的字段",
}


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api") and "text/html" in request.headers.get("accept", "")


def _answer(request: Request, status_code: int, details: list[dict], headers: dict | None = None):
    """JSON for API clients; for a person in the browser the same refusal as the shared error page, in their language."""
    if not _wants_html(request):
        return JSONResponse(status_code=status_code, content={"detail": details}, headers=headers)
    from ingot.api.deps import language
    from ingot.web.rendering import render

    lang = language(request)
    message = "；".join(detail["msg_en" if lang == "en" else "msg"] for detail in details)
    response = render(request, "error.html", None, lang, status_code=status_code, status=status_code, message=message)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError):
        if isinstance(exc, NotAuthenticated) and _wants_html(request):
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return _answer(request, exc.status_code, [exc.as_dict()])

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        details = []
        for error in exc.errors():
            location = [str(part) for part in error.get("loc", ())]
            field = ".".join(part for part in location if part not in ("body", "query", "path", "header", "cookie"))
            message_en = str(error.get("msg", "invalid value"))
            kind = str(error.get("type", "value_error"))
            details.append(
                {
                    "code": kind,
                    "loc": location,
                    "field": field,
                    "msg": f"{field or '请求'}：{_ZH.get(kind, '取值无效')}",
                    "msg_en": f"{field or 'request'}: {message_en}",
                }
            )
        return _answer(request, 422, details)

    @app.exception_handler(IntegrityError)
    async def integrity_error(request: Request, exc: IntegrityError):
        log.info("integrity error: %s", exc.orig)
        return _answer(request, 409, [{"code": "conflict", "msg": "与现有数据冲突（唯一性或引用约束）",
                                       "msg_en": "conflicts with existing data (uniqueness or reference)"}])

    def out_of_range(request: Request):
        return _answer(request, 422, [{"code": "out_of_range", "msg": "数值超出可存储的范围",
                                       "msg_en": "a number is outside the range that can be stored"}])

    # The last line of defence: inputs are bounded where they enter, but a number too large for the database must
    # still be a 422, never a 500 (SQLite raises OverflowError, PostgreSQL a DataError).
    @app.exception_handler(OverflowError)
    async def overflow_error(request: Request, exc: OverflowError):
        log.info("number out of range: %s", exc)
        return out_of_range(request)

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError):
        log.info("value rejected by the database: %s", exc.orig)
        return out_of_range(request)

    @app.exception_handler(StatementError)
    async def statement_error(request: Request, exc: StatementError):
        if isinstance(exc.orig, OverflowError):
            return out_of_range(request)
        return await unexpected(request, exc)

    def busy(request: Request):
        return _answer(request, 503, [{"code": "busy", "msg": "系统繁忙，请稍后重试（请求未执行）",
                                       "msg_en": "the platform is busy; retry shortly (the request was not carried out)"}],
                       headers={"Retry-After": "1"})

    # Overload is a retryable refusal, not an internal error: the unit of work rolled back, nothing was written.
    @app.exception_handler(PoolTimeout)
    async def pool_timeout(request: Request, exc: PoolTimeout):
        log.warning("connection pool exhausted: %s", exc)
        return busy(request)

    @app.exception_handler(OperationalError)
    async def operational_error(request: Request, exc: OperationalError):
        if "database is locked" in str(exc.orig) or "could not obtain lock" in str(exc.orig):
            log.warning("database busy: %s", exc.orig)
            return busy(request)
        return await unexpected(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        zh = {404: "未找到", 405: "不支持该方法", 401: "请先登录", 403: "无权访问"}.get(exc.status_code, "请求错误")
        return _answer(request, exc.status_code, [{"code": str(exc.status_code), "msg": zh, "msg_en": str(exc.detail)}],
                       headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error", exc_info=exc)
        return _answer(request, 500, [{"code": "internal", "msg": "服务器内部错误", "msg_en": "internal server error"}])
