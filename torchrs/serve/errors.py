"""TF Serving's error model: a canonical status code and a message, mapped to HTTP and gRPC.

A request TF Serving rejects answers ``{"error": "<message>"}`` with the HTTP status its
``ToHTTPStatusCode`` gives the canonical code (``tensorflow_serving/model_servers/http_server.cc``),
and over gRPC the same code with the same message. Handlers raise :class:`ServingError`; the REST
and gRPC front ends turn it into their own wire form, so both always agree.
"""

from __future__ import annotations

import enum


class Code(enum.Enum):
    """The canonical codes TF Serving returns (the names of ``grpc.StatusCode`` / ``absl::StatusCode``)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"
    UNKNOWN = "UNKNOWN"


# TF Serving's http_server.cc ToHTTPStatusCode, for the codes this server raises.
HTTP_STATUS: dict[Code, int] = {
    Code.INVALID_ARGUMENT: 400,
    Code.NOT_FOUND: 404,
    Code.FAILED_PRECONDITION: 400,  # TF Serving answers 400, not 412, for a failed precondition
    Code.RESOURCE_EXHAUSTED: 429,
    Code.UNIMPLEMENTED: 501,
    Code.UNAVAILABLE: 503,
    Code.INTERNAL: 500,
    Code.UNKNOWN: 500,
}


class ServingError(Exception):
    """A request the server refuses, with TF Serving's code and a message that names the fix.

    Args:
        code: the canonical status code.
        message: what was wrong, and how to send it right.

    >>> error = ServingError(Code.NOT_FOUND, "Servable not found for request: Latest(ranker)")
    >>> error.http_status, error.json()
    (404, {'error': 'Servable not found for request: Latest(ranker)'})
    """

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status TF Serving's REST API gives this code."""
        return HTTP_STATUS[self.code]

    def json(self) -> dict[str, str]:
        """TF Serving's REST error body."""
        return {"error": self.message}


class ModelLoadError(Exception):
    """A model version that cannot be served (unreadable directory, failed warm-up)."""
