"""Domain errors raised by services; the API, CLI and web layers translate them.

Each carries a zh-CN and an English message so every interface can show the user's language.
"""
from __future__ import annotations


class DomainError(Exception):
    status_code = 400
    code = "domain_error"

    def __init__(self, message_zh: str, message_en: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message_en)
        self.message_zh = message_zh
        self.message_en = message_en
        self.field = field
        if code:
            self.code = code

    def message(self, language: str = "zh-CN") -> str:
        return self.message_en if language.startswith("en") else self.message_zh

    def as_dict(self) -> dict:
        detail = {"code": self.code, "msg": self.message_zh, "msg_en": self.message_en}
        if self.field:
            detail["loc"] = self.field.split(".")
            detail["field"] = self.field
        return detail


class InvalidInput(DomainError):
    status_code = 422
    code = "invalid"


class NotAuthenticated(DomainError):
    status_code = 401
    code = "not_authenticated"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class ImportRejected(DomainError):
    """A multi-row import with row-level errors; nothing was written."""

    status_code = 422
    code = "import_rejected"

    def __init__(self, errors: list[dict]):
        super().__init__(
            f"导入被拒绝：{len(errors)} 处错误，未写入任何数据",
            f"import rejected: {len(errors)} error(s), nothing was written",
        )
        self.errors = errors

    def as_dict(self) -> dict:
        detail = super().as_dict()
        detail["errors"] = self.errors
        return detail
