"""REST error responses in Salesforce's shape: a JSON list of ``{message, errorCode}``."""

from __future__ import annotations


class ApiError(Exception):
    """An error answer of the emulated org (status, errorCode, message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> list[dict[str, str]]:
        return [{"message": self.message, "errorCode": self.code}]

    def body_for(self, path: str) -> list[dict[str, str]] | dict[str, str]:
        """Core REST answers a list; the Data Cloud tenant API (``/api/…``) one object."""
        body = self.body()
        return body[0] if path.startswith("/api/") else body


def invalid_session() -> ApiError:
    return ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def invalid_state(message: str) -> ApiError:
    return ApiError(400, "INVALIDJOBSTATE", message)
