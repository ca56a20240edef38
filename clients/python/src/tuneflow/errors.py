"""Exceptions raised by the tuneflow client.

Every error the server answers with is JSON of the shape
``{"error": {"code": ..., "message": ..., "details": ...}}``; it becomes a
:class:`TuneflowError` (or one of its subclasses) carrying those fields, with the
server's message verbatim.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional, Type

__all__ = [
    "TuneflowError",
    "InvalidInput",
    "Unauthorized",
    "NotFound",
    "Conflict",
    "ServerUnavailable",
    "error_from_response",
]


class TuneflowError(Exception):
    """An error answered by the tuneflow server, or the server could not be reached.

    Attributes:
        status: the HTTP status (``None`` when no answer arrived).
        code: the server's stable error code, e.g. ``"not_found"`` (``None`` if absent).
        message: the server's message, verbatim.
        details: extra structured information, e.g. the list of problems of an
            invalid experiment document (``None`` if absent).
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        code: Optional[str] = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details

    def __str__(self) -> str:
        lines = [self.message]
        if isinstance(self.details, list):
            lines.extend(f"  - {_describe_detail(item)}" for item in self.details)
        elif self.details is not None:
            lines.append(f"  {json.dumps(self.details)}")
        return "\n".join(lines)


class InvalidInput(TuneflowError):
    """The request was refused as invalid (400, 413, 415 or 422).

    For an experiment document that breaks a rule (code ``invalid_spec``),
    :attr:`details` lists every problem with its path, line and hint.
    """


class Unauthorized(TuneflowError):
    """A missing or wrong bearer token (401)."""


class NotFound(TuneflowError):
    """An unknown experiment, trial or route (404)."""


class Conflict(TuneflowError):
    """The request does not fit the current state (409).

    The code tells which: ``already_exists``, ``trial_finished`` or ``conflict``.
    """


class ServerUnavailable(TuneflowError):
    """The server cannot be reached, did not start, or its store is unavailable (503)."""


_BY_STATUS: Dict[int, Type[TuneflowError]] = {
    400: InvalidInput,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: InvalidInput,
    415: InvalidInput,
    422: InvalidInput,
    503: ServerUnavailable,
}


def error_from_response(status: int, reason: str, body: bytes) -> TuneflowError:
    """Builds the exception for an HTTP error answer from its status and body."""
    cls = _BY_STATUS.get(status, TuneflowError)
    code, message, details = None, None, None
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        details = error.get("details")
    if not message:
        text = body.decode("utf-8", errors="replace").strip()
        message = text or f"HTTP {status} {reason}".strip()
    return cls(message, status=status, code=code, details=details)


def _describe_detail(item: Any) -> str:
    """One problem of an error's details as a line of text."""
    if not isinstance(item, dict):
        return str(item)
    where = item.get("path") or ""
    if item.get("line") is not None:
        where += f" (line {item['line']})"
    text = item.get("message") or json.dumps(item)
    line = f"{where}: {text}" if where else text
    if item.get("hint"):
        line += f" (hint: {item['hint']})"
    return line
