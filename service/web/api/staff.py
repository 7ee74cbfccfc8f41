"""Staff actions over the API: edit (plan versions), approve or reject a held
plan, retry a delivery, and the queue overview."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from refflow.db.models import AuditEntry, Delivery
from refflow.pipeline import plan_revisions, staff_actions
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


# -- plan versions ------------------------------------------------------------------


def _if_match() -> int:
    """The version the editor started from, from ``If-Match: "<version>"``."""
    header = request.headers.get("If-Match")
    if header is None or not header.strip():
        raise ApiError(428, 'send If-Match with the ETag of the plan you edited (If-Match: "3")',
                       code="precondition_required")
    tags = [t.strip() for t in header.split(",") if t.strip()]
    if len(tags) != 1:
        raise ApiError(400, "If-Match must name exactly one plan version", code="bad_if_match")
    tag = tags[0]
    if tag.startswith("W/"):
        tag = tag[2:]
    tag = tag.strip('"')
    if not tag.isascii() or not tag.isdigit() or len(tag) > 9:
        raise ApiError(400, 'If-Match must be a plan version\'s ETag, such as "3"',
                       code="bad_if_match")
    return int(tag)


@bp.put("/referrals/<referral_id>/plan")
def revise_plan(referral_id: str):
    """A new plan version (staff). Body: ``{"plan": {...}, "reason": "...",
    "override": null | "..."}``; ``If-Match`` names the version edited."""
    staff = require_staff()
    _visible_referral(referral_id)
    expected = _if_match()
    data = read_json_body()
    if not isinstance(data, dict):
        raise ApiError(422, "the body must be a JSON object")
    unknown = sorted(str(k)[:40] for k in set(data) - {"plan", "reason", "override"})
    if unknown:
        raise ApiError(422, "unknown field(s): " + ", ".join(unknown),
                       fields={k: "unknown field" for k in unknown})
    for key in ("plan", "reason"):
        if key not in data:
            raise ApiError(422, f"{key} is required", fields={key: "required"})
    if not isinstance(data["plan"], dict):
        raise ApiError(422, "plan must be an object", fields={"plan": "must be an object"})
    for key in ("reason", "override"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise ApiError(422, f"{key} must be text", fields={key: "must be text"})
    override = data.get("override")
    if override is not None and not override.strip():
        override = None
    try:
        plan = plan_revisions.revise_plan(_pipeline(), referral_id, data["plan"],
                                          actor=staff.actor, reason=data["reason"],
                                          override=override, expected_version=expected)
    except LookupError:
        raise ApiError(404, "no such referral") from None
    except StepError as exc:
        raise ApiError(409, str(exc), code="invalid_state") from None
    response = jsonify(plan)
    response.headers["ETag"] = f'"{plan["version"]}"'
    return response


@bp.get("/referrals/<referral_id>/plan/versions")
def plan_versions(referral_id: str):
    staff = require_staff()
    _visible_referral(referral_id)
    items = plan_revisions.list_versions(_pipeline(), referral_id)
    if items is None:
        raise ApiError(404, "no plan yet", code="plan_not_ready")
    with _pipeline().db.session() as session:
        session.add(AuditEntry(actor=staff.actor, action="plan.versions.read",
                               referral_id=referral_id, ip=request.remote_addr))
    current = next((i["version"] for i in items if i["current"]), None)
    response = jsonify({"items": items, "current": current})
    if current is not None:
        response.headers["ETag"] = f'"{current}"'
    return response


@bp.get("/referrals/<referral_id>/plan/versions/<version>")
def plan_version(referral_id: str, version: str):
    # plain rule text like the id routes (metrics labels and OpenAPI paths use
    # it); a version is checked to be a number here, before any query
    staff = require_staff()
    _visible_referral(referral_id)
    if not (version.isascii() and version.isdigit() and len(version) <= 7):
        raise ApiError(404, "no such plan version")
    body = plan_revisions.get_version(_pipeline(), referral_id, int(version))
    if body is None:
        raise ApiError(404, "no such plan version")
    with _pipeline().db.session() as session:
        session.add(AuditEntry(actor=staff.actor, action="plan.version.read",
                               referral_id=referral_id, ip=request.remote_addr,
                               detail=f"version {int(version)}"))
    response = jsonify(body)
    response.headers["ETag"] = f'"{int(version)}"'
    return response
