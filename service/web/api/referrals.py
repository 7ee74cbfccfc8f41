"""The referral API: /api/v1/referrals and each referral's plan, documents and
cancellation (DESIGN.md "Public contract")."""

from __future__ import annotations

import datetime as dt
import json

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from refflow.accounts.principal import Principal
from refflow.db.models import AuditEntry, Document, Plan
from refflow.documents.names import DOCUMENT_NAMES
from refflow.intake.idempotency import IdempotencyInFlight, check_key
from refflow.intake.validation import clinic_today, parse_referral
from refflow.pipeline import accept as intake
from refflow.pipeline import staff_actions
from refflow.referrals import queries, states
from refflow.web import downloads, refused_reads
from refflow.web.api.paging import list_query
from refflow.web.converters import is_id
from refflow.web.errors import ApiError
from refflow.web.principal import require_principal

bp = Blueprint("referrals_api", __name__, url_prefix="/api/v1")



def _db():
    return current_app.extensions["refflow.db"]


def _settings():
    return current_app.extensions["refflow.settings"]


def _audit(session, principal: Principal, action: str, referral_id: str | None) -> None:
    session.add(AuditEntry(actor=principal.actor, action=action, referral_id=referral_id,
                           ip=request.remote_addr))


def _load_visible(session, principal: Principal, referral_id: str):
    referral = queries.visible(session, referral_id,
                               None if principal.is_staff else principal.practice_id)
    if referral is None:
        refused_reads.refused(principal.actor, referral_id)
        raise ApiError(404, "no such referral")
    return referral


def read_json_body() -> object:
    mimetype = request.mimetype
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(415, "send the referral as JSON (Content-Type: application/json)")
    limit = _settings().max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"request body is larger than {limit} bytes")
    raw = request.get_data(cache=False)
    if len(raw) > limit:
        raise ApiError(413, f"request body is larger than {limit} bytes")
    try:
        marked: list[_RepeatedKeys] = []
        data = json.loads(raw, object_pairs_hook=lambda pairs: _json_object(pairs, marked))
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        raise ApiError(400, "the request body is not valid JSON", code="malformed_json") from None
    if marked:  # json.loads would keep the last value silently: which one was meant?
        try:
            repeated = _repeated_paths(data, "")
        except RecursionError:
            repeated = [key for obj in marked for key in obj.repeated]
        shown = ", ".join(repeated[:20]) + (f" and {len(repeated) - 20} more"
                                            if len(repeated) > 20 else "")
        raise ApiError(422, "a key is given more than once: " + shown,
                       fields={path: "given more than once" for path in repeated})
    if b"\\u0000" in raw:  # a NUL character: no database column can store it
        try:
            paths = _nul_paths(data, "")
        except RecursionError:
            paths = ["(body)"]
        fields = {path.replace("\x00", "\\u0000"): "must not contain a NUL character (\\u0000)"
                  for path in paths}
        if fields:
            raise ApiError(422, "text must not contain NUL characters", fields=fields)
    return data


class _RepeatedKeys(dict):
    """A decoded JSON object in which ``repeated`` keys were given more than once."""

    repeated: list[str]


def _json_object(pairs: list[tuple[str, object]], marked: list) -> dict:
    obj: dict = {}
    repeated = []
    for key, value in pairs:
        if key in obj and key not in repeated:
            repeated.append(key)
        obj[key] = value
    if not repeated:
        return obj
    found = _RepeatedKeys(obj)
    found.repeated = repeated
    marked.append(found)
    return found


def _repeated_paths(value, path: str) -> list[str]:
    """The dotted paths of the keys given more than once in ``value``."""
    found = []
    if isinstance(value, _RepeatedKeys):
        found += [f"{path}.{key}" if path else key for key in value.repeated]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _repeated_paths(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _repeated_paths(item, f"{path}.{i}" if path else str(i))
    return found


def _nul_paths(value, path: str) -> list[str]:
    """The dotted paths of the strings (keys too) in ``value`` that hold a NUL."""
    if isinstance(value, str):
        return [path or "(body)"] if "\x00" in value else []
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            found += [sub] if "\x00" in str(key) else []
            found += _nul_paths(item, sub)
        return found
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _nul_paths(item, f"{path}[{i}]")]
    return []


@bp.post("/referrals")
def create_referral():
    """Accept a referral: the API key check and every row of the referral
    (``refflow.intake.accept``) in one transaction; 202 once it committed."""
    key = None
    try:
        with _db().session() as session:
            principal = require_principal(session)  # 401 before anything is read
            if principal.practice_id is None:
                raise ApiError(403, "only a referring practice can submit referrals")
            key = check_key(request.headers.get("Idempotency-Key"))
            data = read_json_body()
            referral = parse_referral(data, today=clinic_today(_settings().clinic_timezone))
            submitter = intake.Submitter(practice_id=principal.practice_id,
                                         actor=principal.actor, ip=request.remote_addr,
                                         request_id=g.get("request_id"))
            body = intake.accept_in(
                session, submitter, data, referral, idempotency_key=key,
                clinic_timezone=_settings().clinic_timezone,
                find_problems=current_app.extensions.get("refflow.find_problems"),
                retention=current_app.config["IDEMPOTENCY_RETENTION"])
    except IntegrityError:
        if key is None:
            raise
        raise IdempotencyInFlight() from None  # another request stored this key first
    g.intake_outcome = body["status"]
    response = jsonify(body)
    response.status_code = 202
    response.headers["Location"] = body["links"]["self"]
    return response


@bp.get("/referrals")
def list_referrals():
    principal = require_principal()
    query = list_query(states.STATES, _cursor_is_sound)
    with _db().session() as session:
        rows, next_cursor = queries.page(
            session, practice_id=None if principal.is_staff else principal.practice_id,
            statuses=query.statuses or None, limit=query.limit, cursor=query.cursor)
        _audit(session, principal, "referral.list", None)
        items = [queries.summary(r) for r in rows]
    return jsonify({"items": items, "next_cursor": next_cursor,
                    **query.next_link("/api/v1/referrals", next_cursor)})


def _cursor_is_sound(cursor: str) -> bool:
    """Whether ``cursor`` decodes to a time and a refflow id (checked before
    any query: a made-up one could carry text no database column takes)."""
    try:
        created, rid = queries.decode_cursor(cursor)
        created.astimezone(dt.timezone.utc)  # naive, or out of range in UTC
    except (ValueError, TypeError, OverflowError, RecursionError):  # binascii.Error: ValueError
        return False
    return is_id(rid) and created.tzinfo is not None


@bp.get("/referrals/<referral_id>")
def get_referral(referral_id: str):
    principal = require_principal()
    with _db().session() as session:
        referral = _load_visible(session, principal, referral_id)
        _audit(session, principal, "referral.read", referral.id)
        return jsonify(queries.detail(session, referral))


@bp.get("/referrals/<referral_id>/plan")
def get_plan(referral_id: str):
    principal = require_principal()
    with _db().session() as session:
        referral = _load_visible(session, principal, referral_id)
        plan = session.scalar(select(Plan).where(Plan.referral_id == referral.id))
        _audit(session, principal, "plan.read", referral.id)
        if plan is None:
            raise ApiError(404, f"no plan yet: the referral is {referral.status}",
                           code="plan_not_ready")
        response = jsonify(plan.body)
        # the current version: a staff edit (PUT .../plan) sends it back in If-Match
        response.headers["ETag"] = f'"{plan.body.get("version", 1)}"'
        return response


@bp.get("/referrals/<referral_id>/documents")
def list_documents(referral_id: str):
    principal = require_principal()
    with _db().session() as session:
        referral = _load_visible(session, principal, referral_id)
        rows = session.execute(select(Document.name, Document.content_type, Document.size,
                                      Document.sha256)
                               .where(Document.referral_id == referral.id,
                                      Document.name.in_(DOCUMENT_NAMES))
                               .order_by(Document.name)).all()
        _audit(session, principal, "documents.list", referral.id)
    return jsonify({"items": [queries.document_json(referral_id, *row) for row in rows]})


@bp.get("/referrals/<referral_id>/documents/<name>")
def get_document(referral_id: str, name: str):
    principal = require_principal()
    if name not in DOCUMENT_NAMES:
        raise ApiError(404, "no such document")
    with _db().session() as session:
        referral = _load_visible(session, principal, referral_id)
        doc = session.scalar(select(Document).where(Document.referral_id == referral.id,
                                                    Document.name == name))
        if doc is None:
            raise ApiError(404, "no such document")
        _audit(session, principal, "document.read", referral.id)
        response = Response(downloads.content(doc), mimetype=doc.content_type)
    response.headers["Content-Disposition"] = f'inline; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["ETag"] = doc.sha256
    return response


@bp.post("/referrals/<referral_id>/cancel")
def cancel_referral(referral_id: str):
    principal = require_principal()
    reason = _optional_reason()
    with _db().session() as session:
        referral = _load_visible(session, principal, referral_id)
        try:
            staff_actions.cancel(session, referral, actor=principal.actor,
                                 reason=reason or "cancelled")
        except states.IllegalTransition as exc:
            raise ApiError(409, f"a {exc.current} referral cannot be cancelled",
                           code="invalid_state") from None
        _audit(session, principal, "referral.cancel", referral.id)
        body = queries.summary(referral)
    return jsonify(body)


def _optional_reason() -> str | None:
    if not request.get_data(cache=True):
        return None
    data = read_json_body()
    if not isinstance(data, dict) or set(data) - {"reason"}:
        raise ApiError(422, "the body may only hold a 'reason'",
                       fields={k: "unknown field" for k in (data if isinstance(data, dict)
                                                            else {"body": 1}) if k != "reason"})
    reason = data.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise ApiError(422, "reason must be text of at most 500 characters",
                       fields={"reason": "invalid"})
    return reason
