"""Received faxes over the API: the staff fax inbox (``/api/v1/faxes``) and the
fax providers' inbound webhook (``/api/v1/fax/inbound/<transport>``).

The inbox is staff only (a practice's key gets 403); every read of a fax is
on the audit trail with ids only (``refflow.faxin.inbox``). The webhook has
no bearer key: the transport named in the path checks the request itself
(``parse_inbound``: its signature), and it answers with fax ids only.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select

from refflow.db.models import ReceivedFax
from refflow.faxin import inbox, pages
from refflow.faxin.inbox import FaxView
from refflow.pipeline.context import Pipeline, StepError
from refflow.plugins.channels.base import PermanentChannelError, TransientChannelError
from refflow.plugins.channels.fax.transports import INBOUND
from refflow.web.api.paging import list_query
from refflow.web.api.referrals import read_json_body
from refflow.web.errors import ApiError
from refflow.web.principal import require_staff

bp = Blueprint("faxes_api", __name__, url_prefix="/api/v1")

INBOUND_MAX_BYTES = 32 * 1024 * 1024  # a provider's webhook carries the fax (base64 or raw)


def _pipeline() -> Pipeline:
    return current_app.extensions["refflow.pipeline"]


def fax_base(fax_id: str) -> str:
    return f"/api/v1/faxes/{fax_id}"


def fax_summary(fax: FaxView) -> dict:
    base = fax_base(fax.id)
    practice = None
    if fax.practice_id:
        practice = {"id": fax.practice_id, "name": fax.practice_name,
                    "matched_by": fax.matched_by}
    return {
        "id": fax.id, "status": fax.status, "source": fax.source,
        "from_number": fax.from_number, "to_number": fax.to_number,
        "content_type": fax.content_type, "page_count": fax.pages, "practice": practice,
        "received_at": fax.received_at.isoformat(), "updated_at": fax.updated_at.isoformat(),
        "read": fax.reading is not None, "referral_id": fax.referral_id,
        "handled_by": fax.handled_by,
        "handled_at": fax.handled_at.isoformat() if fax.handled_at else None,
        "archived_reason": fax.archived_reason,
        "links": {"self": base},
    }


def fax_detail(fax: FaxView) -> dict:
    base = fax_base(fax.id)
    texts = fax.page_texts
    body = fax_summary(fax)
    body.update({
        "source_ref": fax.source_ref, "sha256": fax.sha256,
        "pages": [{"number": n, "href": f"{base}/pages/{n}.png",
                   "text": texts[n - 1].get("text") if n <= len(texts) else None,
                   "confidence": texts[n - 1].get("confidence") if n <= len(texts) else None}
                  for n in range(1, fax.pages + 1)],
        "reading_error": fax.reading_error,
        "form": fax.form, "fields": fax.fields, "draft": fax.draft,
        "links": {"self": base, "referral": f"{base}/referral", "attach": f"{base}/attach",
                  "archive": f"{base}/archive"},
    })
    return body


def _status(fax_id: str) -> Response:
    """The answer to an action: the fax's id, status and referral (no re-read)."""
    with _pipeline().db.session() as session:
        row = session.execute(select(ReceivedFax.status, ReceivedFax.referral_id)
                              .where(ReceivedFax.id == fax_id)).one()
        body = {"id": fax_id, "status": row.status, "referral_id": row.referral_id,
                "links": {"self": fax_base(fax_id)}}
    return jsonify(body)


def _object_body(allowed: set[str]) -> dict:
    data = read_json_body()
    if not isinstance(data, dict):
        raise ApiError(422, "the body must be a JSON object", fields={"body": "not an object"})
    unknown = sorted(str(k)[:40] for k in set(data) - allowed)
    if unknown:
        raise ApiError(422, "unknown field(s): " + ", ".join(unknown),
                       fields={k: "unknown field" for k in unknown})
    return data


def _text(data: dict, key: str, *, required: bool) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise ApiError(422, f"{key} is required", fields={key: "required"})
        return None
    if not isinstance(value, str):
        raise ApiError(422, f"{key} must be text", fields={key: "must be text"})
    return value


def _domain(exc: Exception) -> ApiError:
    """The answer to an error of ``faxin.inbox``."""
    if isinstance(exc, inbox.InvalidFaxAction):
        return ApiError(422, exc.message, fields=exc.fields)
    if isinstance(exc, inbox.NoSuchReferral):
        return ApiError(422, "no such referral", fields={"referral_id": "no such referral"})
    if isinstance(exc, LookupError):
        return ApiError(404, "no such fax")
    if isinstance(exc, StepError):
        return ApiError(409, str(exc), code="invalid_state")
    raise exc


FAX_ERRORS = (inbox.InvalidFaxAction, LookupError, StepError)


# -- the inbox (staff) --------------------------------------------------------------


@bp.get("/faxes")
def list_faxes():
    staff = require_staff()
    query = list_query(inbox.STATUSES, _cursor_is_sound)
    with _pipeline().db.session() as session:
        items, next_cursor = inbox.listing(session, actor=staff.actor, ip=request.remote_addr,
                                           statuses=query.statuses or None,
                                           limit=query.limit, cursor=query.cursor)
        body = {"items": [fax_summary(f) for f in items], "next_cursor": next_cursor,
                **query.next_link("/api/v1/faxes", next_cursor)}
    return jsonify(body)


def _cursor_is_sound(cursor: str) -> bool:
    try:
        inbox.decode_cursor(cursor)
    except ValueError:
        return False
    return True


@bp.get("/faxes/<fax_id>")
def get_fax(fax_id: str):
    staff = require_staff()
    with _pipeline().db.session() as session:
        fax = inbox.view(session, fax_id, actor=staff.actor, ip=request.remote_addr)
        if fax is None:
            raise ApiError(404, "no such fax")
    response = jsonify(fax_detail(fax))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/faxes/<fax_id>/pages/<page>.png")
def get_page(fax_id: str, page: str):
    # a plain rule (metrics labels and the OpenAPI path use it); the page number
    # is checked here, before any query
    staff = require_staff()
    if not (page.isascii() and page.isdigit() and len(page) <= 4):
        raise ApiError(404, "no such page")
    with _pipeline().db.session() as session:
        try:
            image = inbox.page_png(session, _pipeline().store, fax_id, int(page),
                                   actor=staff.actor, ip=request.remote_addr)
        except pages.NotAFax:
            image = None
        if image is None:
            raise ApiError(404, "no such fax or page")
    response = Response(image, mimetype="image/png")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/faxes/<fax_id>/referral")
def create_referral(fax_id: str):
    """A referral from the fax's reviewed draft: ``{"practice_id", "referral"}``
    (the referral JSON of ``POST /api/v1/referrals``); 202 like that route."""
    staff = require_staff()
    data = _object_body({"practice_id", "referral"})
    practice_id = _text(data, "practice_id", required=False)
    if "referral" not in data:
        raise ApiError(422, "referral is required", fields={"referral": "required"})
    try:
        body = inbox.create_referral(_pipeline(), fax_id, data["referral"],
                                     practice_id=practice_id, actor=staff.actor,
                                     ip=request.remote_addr)
    except FAX_ERRORS as exc:
        raise _domain(exc) from None
    response = jsonify(body)
    response.status_code = 202
    response.headers["Location"] = body["links"]["self"]
    return response


@bp.post("/faxes/<fax_id>/attach")
def attach(fax_id: str):
    staff = require_staff()
    referral_id = _text(_object_body({"referral_id"}), "referral_id", required=True)
    try:
        inbox.attach(_pipeline(), fax_id, referral_id, actor=staff.actor,
                     ip=request.remote_addr)
    except FAX_ERRORS as exc:
        raise _domain(exc) from None
    return _status(fax_id)


@bp.post("/faxes/<fax_id>/archive")
def archive(fax_id: str):
    staff = require_staff()
    reason = _text(_object_body({"reason"}), "reason", required=True)
    try:
        inbox.archive(_pipeline(), fax_id, reason, actor=staff.actor, ip=request.remote_addr)
    except FAX_ERRORS as exc:
        raise _domain(exc) from None
    return _status(fax_id)


# -- a provider's inbound webhook ---------------------------------------------------


@bp.post("/fax/inbound/<transport>")
def inbound(transport: str):
    """Faxes a provider received, posted by the provider: the transport checks
    the request (``parse_inbound``) and each fax is stored once."""
    from refflow.plugins.manager import fax_transports

    p = _pipeline()
    found = fax_transports(p.pm, p.settings).get(transport)
    if found is None or INBOUND not in getattr(found, "supports", ()):
        raise ApiError(404, "no inbound fax webhook by this name")
    request.max_content_length = INBOUND_MAX_BYTES
    body = request.get_data(cache=False)
    try:
        faxes = found.parse_inbound(request.headers, body)
    except PermanentChannelError as exc:
        raise ApiError(401, f"the fax transport refused the request: {exc}") from None
    except TransientChannelError as exc:
        raise ApiError(503, f"the fax transport cannot take the request now: {exc}",
                       headers={"Retry-After": "30"}) from None
    received = []
    for item in faxes:
        try:
            stored = inbox.receive(p, item.content, source=found.name,
                                   source_ref=item.reference, from_number=item.from_number,
                                   to_number=item.to_number)
        except pages.NotAFax as exc:
            raise ApiError(400, str(exc), code="not_a_fax") from None
        received.append({"id": stored.fax_id, "created": stored.created})
    return jsonify({"received": received})
