"""Staff actions over the API: approve or reject a held plan, retry a delivery,
and the queue overview."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from refflow.db.models import AuditEntry, Delivery
from refflow.pipeline import staff_actions
from refflow.pipeline.context import Pipeline, StepError
from refflow.pipeline.overview import queue_overview
from refflow.referrals import queries
from refflow.web.api.referrals import read_json_body
from refflow.web.errors import ApiError
from refflow.web.principal import require_staff

bp = Blueprint("staff_api", __name__, url_prefix="/api/v1")


def _pipeline() -> Pipeline:
    return current_app.extensions["refflow.pipeline"]


def _body(allowed: set[str]) -> dict:
    if not request.get_data(cache=True):
        return {}
    data = read_json_body()
    if not isinstance(data, dict):
        raise ApiError(422, "the body must be a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(422, "unknown field(s): " + ", ".join(unknown),
                       fields={k: "unknown field" for k in unknown})
    for key, value in data.items():
        if value is not None and (not isinstance(value, str) or len(value) > 1000):
            raise ApiError(422, f"{key} must be text of at most 1000 characters",
                           fields={key: "invalid"})
    return data


def _visible_referral(referral_id: str):
    with _pipeline().db.session() as session:
        if queries.visible(session, referral_id, None) is None:
            raise ApiError(404, "no such referral")


def _review(referral_id: str, action) -> dict:
    """Approve or reject a held plan on behalf of the signed-in staff member."""
    staff = require_staff()
    note = _body({"note"}).get("note")
    _visible_referral(referral_id)
    try:
        status = action(_pipeline(), referral_id, actor=staff.actor, note=note)
    except StepError as exc:
        raise ApiError(409, str(exc), code="invalid_state") from None
    return jsonify({"id": referral_id, "status": status})


@bp.post("/referrals/<referral_id>/approve")
def approve(referral_id: str):
    return _review(referral_id, staff_actions.approve)


@bp.post("/referrals/<referral_id>/reject")
def reject(referral_id: str):
    return _review(referral_id, staff_actions.reject)


@bp.post("/deliveries/<delivery_id>/retry")
def retry(delivery_id: str):
    staff = require_staff()
    target = _body({"target"}).get("target")
    try:
        delivery = staff_actions.retry_delivery(_pipeline(), delivery_id, actor=staff.actor,
                                        target=target)
    except LookupError:
        raise ApiError(404, "no such delivery") from None
    except StepError as exc:
        raise ApiError(409, str(exc), code="invalid_state") from None
    with _pipeline().db.session() as session:
        return jsonify(queries.delivery_json(session.get(Delivery, delivery.id)))


@bp.get("/queue")
def queue():
    staff = require_staff()
    pipeline = _pipeline()
    overview = queue_overview(pipeline.db, current_app.extensions.get("refflow.broker_stats"))
    with pipeline.db.session() as session:
        session.add(AuditEntry(actor=staff.actor, action="queue.read", ip=request.remote_addr))
    return jsonify(overview)
