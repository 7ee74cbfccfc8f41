"""POST /api/v1/referrals served in front of the Flask app, for the common case.

Intake is the one endpoint referring offices call at volume, and most of its
requests are alike: an API key, a JSON referral that validates, no rule that
rejects it, PostgreSQL. For those, this WSGI handler does what the Flask view
and hooks would do — request id, rate limits, validation, the one-statement
accept (``accept.accept_with_api_key``), security headers, metrics — without
Flask's request context and hook chain, which cost more than the rest of the
request did.

Every other request goes to the Flask app unchanged, and so does a request
this handler began but that turned out not to be the common case (a body that
does not validate, an unknown key, a replayed Idempotency-Key, a rate limit
hit, ...), so every error answer still comes from one place. A request handed
on before anything was written keeps its request id, its body and its rate
limit count (it is not counted twice). Once the accepting statement has been
sent, the request is never handed on: a lost database connection answers 503
(nothing was saved, the statement is its own transaction), anything else 500.
"""

from __future__ import annotations

import io
import json
import time

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from refflow.accounts.principal import api_key_in
from refflow.intake import accept as intake
from refflow.intake.idempotency import check_key
from refflow.intake.schemas import Referral
from refflow.ops import errors, headers, limits, metrics
from refflow.ops.logging import REQUEST_ID_ENVIRON_KEY, request_id_for, request_id_var

PATH = "/api/v1/referrals"
_JSON = "application/json"


class _NotCommon(Exception):
    """The request is not the common case: the Flask app answers it."""


class IntakeFastPath:
    """WSGI middleware: wraps the Flask app's ``wsgi_app`` (``install``)."""

    def __init__(self, app, wsgi_app) -> None:
        self.wsgi_app = wsgi_app
        self.app = app
        self.db = app.extensions["refflow.db"]
        settings = app.extensions["refflow.settings"]
        self.max_body = settings.max_body_bytes
        self.clinic_timezone = settings.clinic_timezone
        self.enabled = self.db.engine.dialect.name == "postgresql"

    def __call__(self, environ, start_response):
        # a request with a cookie may belong to a signed-in browser session,
        # whose handling (expiry, CSRF, the session's own principal) is Flask's
        if not (self.enabled and environ.get("PATH_INFO") == PATH
                and environ.get("REQUEST_METHOD") == "POST" and "HTTP_COOKIE" not in environ):
            return self.wsgi_app(environ, start_response)
        token = api_key_in(environ.get("HTTP_AUTHORIZATION", ""))
        length = environ.get("CONTENT_LENGTH", "")
        if (token is None or not length.isdigit() or int(length) > self.max_body
                or not _is_json(environ.get("CONTENT_TYPE", ""))):
            return self.wsgi_app(environ, start_response)
        return self._serve(environ, start_response, token, int(length))

    def _serve(self, environ, start_response, token: str, length: int):
        start = time.perf_counter()
        request_id = environ[REQUEST_ID_ENVIRON_KEY] = request_id_for(environ)
        reset = request_id_var.set(request_id)
        try:
            # the rate-limit count travels to Redis while the body is validated
            limit_outcome = self.app.extensions["refflow.limiter"].start_count(
                limits.INTAKE_ENDPOINT, "POST", environ.get("REMOTE_ADDR"),
                environ["HTTP_AUTHORIZATION"])
            try:
                try:
                    raw = environ["wsgi.input"].read(length)
                    environ["wsgi.input"] = io.BytesIO(raw)  # for the Flask app, if handed on
                    parsed = self._parse(environ, raw) if len(raw) == length else None
                finally:
                    wait = environ[limits.COUNTED_ENVIRON_KEY] = limit_outcome()
                if wait is not None or parsed is None:
                    raise _NotCommon
                status, body, extra = self._accept(environ, token, parsed, request_id)
            except _NotCommon:
                return self.wsgi_app(environ, start_response)
            except Exception as exc:  # noqa: BLE001 - answered as the Flask app would
                status, message, extra = errors.failure(exc, "POST", PATH)
                body = _json_line(errors.envelope(status, message))
            response_headers = [("Content-Type", _JSON), ("Content-Length", str(len(body))),
                                *extra.items(), ("X-Request-Id", request_id),
                                *headers.defaults_for(environ.get("wsgi.url_scheme") == "https",
                                                      PATH)]
            start_response(_STATUS_LINES[status], response_headers)
            metrics.observe_request("POST", PATH, status, time.perf_counter() - start,
                                    "received" if status == 202 else None)
            return [body]
        finally:
            request_id_var.reset(reset)

    def _parse(self, environ, raw: bytes) -> tuple | None:
        """(Idempotency-Key, body, referral, problems) of a request that can
        be accepted in one statement; None when the Flask app must answer."""
        if b"\\u0000" in raw:  # a NUL character: the Flask view names the field (422)
            return None
        try:
            key = check_key(environ.get("HTTP_IDEMPOTENCY_KEY"))
            # validated straight from the JSON text (no dict built first); any
            # error is answered by the Flask view, which names every bad field
            referral = Referral.model_validate_json(raw)
            data = json.loads(raw) if key else None  # only a stored key's fingerprint needs it
        except (errors.ApiError, ValidationError, ValueError, UnicodeDecodeError):
            return None
        find_problems = self.app.extensions.get("refflow.find_problems")
        problems = find_problems(referral) if find_problems else []
        if not intake.can_accept_in_one_statement(self.db, problems):
            return None  # a rule rejected it or failed: recorded through the ORM
        return key, data, referral, problems

    def _accept(self, environ, token: str, parsed: tuple, request_id: str):
        """The referral accepted in one statement: (status, body, headers).
        Raises ``_NotCommon`` when nothing was written and the Flask app must answer."""
        key, data, referral, problems = parsed
        try:
            accepted = intake.accept_with_api_key(
                self.db, token, data, referral, problems=problems, idempotency_key=key,
                clinic_timezone=self.clinic_timezone, ip=environ.get("REMOTE_ADDR"),
                request_id=request_id, retention=self.app.config["IDEMPOTENCY_RETENTION"])
        except IntegrityError:  # a used Idempotency-Key: nothing was written
            raise _NotCommon from None
        if accepted is None:  # an unknown or revoked key: nothing was written
            raise _NotCommon
        # the body as the Flask view writes it (also the stored answer, encoded once)
        return 202, (accepted.encoded + "\n").encode(), {"Location": accepted.body["links"]["self"]}


def install(app) -> None:
    """Serve the common intake request in front of ``app`` (PostgreSQL only)."""
    app.wsgi_app = IntakeFastPath(app, app.wsgi_app)


def _is_json(content_type: str) -> bool:
    mimetype = content_type.partition(";")[0].strip().lower()
    return mimetype == _JSON or mimetype.endswith("+json")


def _json_line(value: dict) -> bytes:
    return (json.dumps(value, separators=(",", ":")) + "\n").encode()


_STATUS_LINES = {202: "202 ACCEPTED", 500: "500 INTERNAL SERVER ERROR", 503: "503 SERVICE UNAVAILABLE"}
