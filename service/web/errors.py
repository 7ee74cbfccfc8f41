"""The JSON error envelope: ``{"error": {"code", "message", "fields"}}``.

API paths (``/api/``, ``/healthz``, ``/readyz``, ``/metrics``) always answer
errors in it, including 404, 405, 413 and 500; web pages get HTML. The core's
own errors (an invalid referral, a reused Idempotency-Key, ...) are mapped to
it here. Messages never contain patient data.
"""

from __future__ import annotations

import logging
import traceback

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from refflow.intake.idempotency import (
    IdempotencyConflict,
    IdempotencyInFlight,
    InvalidIdempotencyKey,
)
from refflow.intake.validation import InvalidReferral
from refflow.planning.revisions import InvalidRevision, SafetyRuleBroken, VersionConflict

log = logging.getLogger("refflow.errors")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    428: "precondition_required",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None,
                 fields: dict | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}


def envelope(status: int, message: str, *, code: str | None = None,
             fields: dict | None = None) -> dict:
    return {"error": {"code": code or CODES.get(status, "error"), "message": message,
                      "fields": fields or {}}}


def error_response(status: int, message: str, *, code: str | None = None,
                   fields: dict | None = None, headers: dict | None = None):
    response = jsonify(envelope(status, message, code=code, fields=fields))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def wants_json() -> bool:
    path = request.path
    if path.startswith(("/api/", "/healthz", "/readyz", "/metrics")):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def from_domain_error(exc: Exception) -> ApiError:
    """The API's answer to an error the core raised."""
    if isinstance(exc, InvalidReferral):
        return ApiError(422, exc.message, fields=exc.fields)
    if isinstance(exc, InvalidIdempotencyKey):
        return ApiError(400, str(exc), code="invalid_idempotency_key")
    if isinstance(exc, IdempotencyConflict):
        return ApiError(422, "this Idempotency-Key was already used with a different request "
                             "body", code="idempotency_key_reused")
    if isinstance(exc, IdempotencyInFlight):
        return ApiError(409, "a request with this Idempotency-Key is still being processed",
                        code="idempotency_key_in_flight")
    if isinstance(exc, VersionConflict):
        return ApiError(412, str(exc), code="version_conflict",
                        headers={"ETag": f'"{exc.current}"'})
    if isinstance(exc, SafetyRuleBroken):
        return ApiError(422, str(exc), code="safety_rule_broken", fields=safety_fields(exc))
    if isinstance(exc, InvalidRevision):
        return ApiError(422, exc.message, code="invalid_revision", fields=exc.fields)
    raise TypeError(f"not a domain error: {type(exc).__name__}")


def safety_fields(exc: SafetyRuleBroken) -> dict[str, str]:
    """Each broken rule as a field: ``exercises.<id>`` (or ``plan.<rule>`` for a
    rule about the whole plan) → "<rule>: <evidence>"."""
    out: dict[str, str] = {}
    for v in exc.violations:
        key = f"exercises.{v['exercise']}" if v.get("exercise") else f"plan.{v['rule']}"
        text = f"{v['rule']}: {v.get('evidence') or 'a safety rule of the plan engine'}"
        if not v.get("overridable", True):
            text += " (cannot be overridden)"
        out[key] = f"{out[key]}; {text}" if key in out else text
    return out


def answer_errors_under(app: Flask, prefix: str, answer) -> None:
    """Errors of requests to ``prefix`` (and below it) are answered by
    ``answer(status, message, fields=..., headers=...)`` instead of the JSON
    envelope or an HTML page: the FHIR endpoint answers an OperationOutcome,
    unrouted paths and wrong methods included."""
    app.extensions.setdefault("refflow.error_answers", {})[prefix] = answer


def _answer_for(app: Flask):
    for prefix, answer in app.extensions.get("refflow.error_answers", {}).items():
        if request.path == prefix or request.path.startswith(prefix + "/"):
            return answer
    return None


DOMAIN_ERRORS = (InvalidReferral, InvalidIdempotencyKey, IdempotencyConflict,
                 IdempotencyInFlight, VersionConflict, SafetyRuleBroken, InvalidRevision)


def init_app(app: Flask, html_handler=None) -> None:
    """Install the handlers. ``html_handler(status, message)`` renders web pages."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        answer = _answer_for(app)
        if answer is not None:
            return answer(exc.status, exc.message, fields=exc.fields, headers=exc.headers)
        return error_response(exc.status, exc.message, code=exc.code, fields=exc.fields,
                              headers=exc.headers)

    for error_class in DOMAIN_ERRORS:
        app.register_error_handler(error_class, lambda exc: _api_error(from_domain_error(exc)))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        message = {
            404: "no such resource",
            405: f"method {request.method} is not allowed here",
            413: f"request body is larger than {app.config.get('MAX_CONTENT_LENGTH')} bytes",
        }.get(status, exc.description or exc.name)
        headers = {}
        if status == 405 and getattr(exc, "valid_methods", None):
            headers["Allow"] = ", ".join(exc.valid_methods)
        if status == 429:
            retry = exc.get_response().headers.get("Retry-After")
            if retry:
                headers["Retry-After"] = retry
        answer = _answer_for(app)
        if wants_json() or html_handler is None or answer is not None:
            if status == 429:
                message = "too many requests; slow down and retry later"
            if answer is not None:
                return answer(status, message, headers=headers)
            return error_response(status, message, headers=headers)
        response = html_handler(status, message)  # a page says the same, with the same headers
        response.headers.extend(headers)
        return response

    html_messages = {503: "The service is briefly unavailable. Please retry.",
                     500: "Something went wrong on our side."}

    @app.errorhandler(Exception)  # a database that is unavailable included
    def _failed(exc: Exception):
        if isinstance(exc, HTTPException):  # pragma: no cover - handled above
            return _http_error(exc)
        rule = request.url_rule.rule if request.url_rule else "<no route>"
        status, message, headers = failure(exc, request.method, rule)
        answer = _answer_for(app)
        if answer is not None:
            return answer(status, message, headers=headers)
        if wants_json() or html_handler is None:
            return error_response(status, message, headers=headers)
        response = html_handler(status, html_messages[status])
        response.headers.extend(headers)  # a page is told when to retry, like the API
        return response


def failure(exc: Exception, method: str, rule: str) -> tuple[int, str, dict]:
    """Log a request that failed with ``exc`` (its type and where, never its
    message) and say how to answer: (status, message, headers).

    A database that cannot be reached, does not answer in time (connect,
    statement or reply timeout, see ``refflow.db.session``), or whose
    connection was lost is 503 with ``Retry-After``: the transaction did not
    commit, unless the connection was lost during the COMMIT itself, which is
    why the message asks for a retry with the same Idempotency-Key (a stored
    referral is then answered again, never stored twice). No pooled
    connection free within the pool timeout is 503 as well. Anything else is
    500.
    """
    if _database_unavailable(exc):
        orig = getattr(exc, "orig", None) or exc
        log.warning("database unavailable (%s) on %s %s", type(orig).__name__, method, rule)
        return 503, "the database is unavailable; retry shortly with the same " \
                    "Idempotency-Key", {"Retry-After": str(RETRY_AFTER_SECONDS)}
    # The exception's message may quote request data (PHI): log its type and
    # where it happened, never its text.
    log.error("unhandled %s on %s %s\n%s", type(exc).__name__, method, rule,
              "".join(traceback.format_tb(exc.__traceback__)))
    return 500, "internal error; the request was not completed", {}


RETRY_AFTER_SECONDS = 5  # about one connect timeout: the database is probed again meanwhile


def _database_unavailable(exc: Exception) -> bool:
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError)))
