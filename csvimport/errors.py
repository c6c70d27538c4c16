"""Refusals the service answers with: an HTTP status and a JSON error naming the problem."""

from __future__ import annotations


class Refused(Exception):
    """A request refused before anything was written."""

    def __init__(self, status: int, code: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint

    def body(self) -> dict[str, str]:
        body = {"error": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        return body
