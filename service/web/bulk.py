"""Fixing failures in bulk (staff): the failed deliveries and the stuck
referrals, with checkboxes to send the chosen deliveries again or cancel the
chosen referrals, and "send again every failed delivery of a channel since a
day"; the same over the JSON API (``POST /api/v1/deliveries/retry``,
``POST /api/v1/referrals/cancel``). The work is ``pipeline.bulk_actions``; the
result (done, skipped and why) is shown at the top of the page.

Also the dashboard's incidents box (``recent_incidents()``, ``ops.alerts``).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from refflow.db.models import AuditEntry, Delivery, Referral
from refflow.ops import alerts
from refflow.pipeline import bulk_actions
from refflow.pipeline.context import Pipeline
from refflow.web import downloads, queue
from refflow.web.api.referrals import read_json_body
from refflow.web.auth import WebUser, current_user, staff_required
from refflow.web.errors import ApiError
from refflow.web.principal import require_staff

bp = Blueprint("bulk", __name__)
api_bp = Blueprint("bulk_api", __name__, url_prefix="/api/v1")

STUCK_DAYS = 7  # the page lists referrals that have not moved for this many days
SHOWN = 200  # rows per list on the page
REASON_MAX = 500


def _pipeline() -> Pipeline:
    return current_app.extensions["refflow.pipeline"]


def _settings():
    return current_app.extensions["refflow.settings"]


def _day_start(value: str) -> dt.datetime | None:
    """The start of a day (``YYYY-MM-DD``) in the clinic's time zone, in UTC."""
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return None
    start = dt.datetime.combine(day, dt.time(), ZoneInfo(_settings().clinic_timezone))
    return start.astimezone(dt.timezone.utc)


def _stuck_days(value) -> int:
    try:
        return min(365, max(0, int(value)))
    except (TypeError, ValueError):
        return STUCK_DAYS


# -- the page -------------------------------------------------------------------------

@bp.get("/failures")
@staff_required
def failures(user: WebUser):
    channel = (request.args.get("channel") or "").strip()[:40]
    since_text = (request.args.get("since") or "").strip()[:10]
    since = _day_start(since_text) if since_text else None
    stuck_days = _stuck_days(request.args.get("stuck_days"))
    with _pipeline().db.session() as s:
        failed = bulk_actions.failed_deliveries(s, channel=channel or None, since=since,
                                                limit=SHOWN)
        stuck = bulk_actions.stuck_referrals(s, older_than=dt.timedelta(days=stuck_days),
                                             limit=SHOWN)
        referrals = {r.id: r for r in s.scalars(select(Referral).where(
            Referral.id.in_({d.referral_id for d in failed})))} if failed else {}
        channels = sorted(set(s.scalars(select(Delivery.channel).where(
            Delivery.status == "failed").distinct())) | {channel} - {""})
        s.add(AuditEntry(actor=user.actor, action="failures.read", ip=request.remote_addr))
        failed = [(d, referrals[d.referral_id], queue.patient_name(referrals[d.referral_id]))
                  for d in failed]
        stuck = [(r, queue.patient_name(r)) for r in stuck]
    body = render_template(  # after the commit: the navigation opens its own session
        "staff/failed.html", user=user, channel=channel, since=since_text,
        since_invalid=bool(since_text) and since is None, channels=channels, failed=failed,
        stuck=stuck, stuck_days=stuck_days, shown=SHOWN)
    return downloads.private(current_app.response_class(body))


def _back(**args):
    kept = {k: request.form.get(k) for k in ("channel", "since", "stuck_days")
            if request.form.get(k)}
    return redirect(url_for("bulk.failures", **{**kept, **args}))


def _flash_result(result: bulk_actions.BulkResult, verb: str, what: str) -> None:
    if not result.done and not result.skipped:
        flash(f"Nothing was {verb}: choose {what} first.", "error")
        return
    flash(result.summary(verb).capitalize() + ".", "success" if result.done else "error")


@bp.post("/failures/retry")
@staff_required
def retry_selected(user: WebUser):
    ids = request.form.getlist("delivery_id")
    result = bulk_actions.retry_deliveries(_pipeline(), ids, actor=user.actor,
                                           ip=request.remote_addr)
    _flash_result(result, "sent again", "the deliveries to send again")
    return _back()


@bp.post("/failures/retry-all")
@staff_required
def retry_all(user: WebUser):
    channel = (request.form.get("channel") or "").strip()[:40]
    since = _day_start((request.form.get("since") or "").strip()[:10])
    if since is None:
        flash("Choose the day from which failed deliveries are sent again.", "error")
        return _back()
    result = bulk_actions.retry_failed(_pipeline(), channel=channel or None, since=since,
                                       actor=user.actor, ip=request.remote_addr)
    if not result.done and not result.skipped:
        flash("No failed delivery to send again"
              + (f" on {channel}" if channel else "") + " since that day.", "error")
    else:
        _flash_result(result, "sent again", "")
    return _back()


@bp.post("/failures/cancel")
@staff_required
def cancel_selected(user: WebUser):
    ids = request.form.getlist("referral_id")
    reason = (request.form.get("reason") or "").strip()[:REASON_MAX]
    result = bulk_actions.cancel_referrals(
        _pipeline(), ids, actor=user.actor, ip=request.remote_addr,
        reason="cancelled by staff" + (f": {reason}" if reason else ""))
    _flash_result(result, "cancelled", "the referrals to cancel")
    return _back()


@bp.app_context_processor
def _incidents() -> dict:
    """``recent_incidents()`` for the dashboard (asked only when it renders)."""
    def recent_incidents() -> list:
        user = current_user()
        if user is None or not user.is_staff:
            return []
        with _pipeline().db.session() as s:
            rows = alerts.recent(s)
            s.expunge_all()
        return [(row, alerts.title(row.kind, row.key)) for row in rows]
    return {"recent_incidents": recent_incidents}


# -- the API ----------------------------------------------------------------------------

def _body(allowed: set[str]) -> dict:
    data = read_json_body()
    if not isinstance(data, dict):
        raise ApiError(422, "the body must be a JSON object")
    unknown = sorted(str(k)[:40] for k in set(data) - allowed)
    if unknown:
        raise ApiError(422, "unknown field(s): " + ", ".join(unknown),
                       fields={k: "unknown field" for k in unknown})
    return data


def _ids(data: dict) -> list[str]:
    ids = data.get("ids")
    if (not isinstance(ids, list) or not ids or len(ids) > bulk_actions.MAX_ITEMS
            or not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids)):
        raise ApiError(422, f"ids must be a list of 1 to {bulk_actions.MAX_ITEMS} ids",
                       fields={"ids": "invalid"})
    return ids


def _text(data: dict, key: str, limit: int) -> str | None:
    value = data.get(key)
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        raise ApiError(422, f"{key} must be text of at most {limit} characters",
                       fields={key: "invalid"})
    return value.strip() or None if value is not None else None


@api_bp.post("/deliveries/retry")
def retry_deliveries():
    """Body ``{"ids": [...]}``, or ``{"since": "<ISO time>", "channel": "fax"}``
    for every delivery failed since then (of that channel)."""
    staff = require_staff()
    data = _body({"ids", "channel", "since"})
    if "ids" in data:
        if "channel" in data or "since" in data:
            raise ApiError(422, "give ids, or since (and channel), not both",
                           fields={"ids": "ids or a filter"})
        result = bulk_actions.retry_deliveries(_pipeline(), _ids(data), actor=staff.actor,
                                               ip=request.remote_addr)
    else:
        since = _text(data, "since", 40)
        try:
            when = dt.datetime.fromisoformat(since) if since else None
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise ApiError(422, "give ids, or since: an ISO 8601 time with its offset",
                           fields={"since": "invalid"})
        result = bulk_actions.retry_failed(_pipeline(), channel=_text(data, "channel", 40),
                                           since=when, actor=staff.actor, ip=request.remote_addr)
    return jsonify(result.as_json())


@api_bp.post("/referrals/cancel")
def cancel_referrals():
    """Body ``{"ids": [...], "reason": "..."}``."""
    staff = require_staff()
    data = _body({"ids", "reason"})
    ids = _ids(data)
    reason = _text(data, "reason", REASON_MAX)
    result = bulk_actions.cancel_referrals(
        _pipeline(), ids, actor=staff.actor, ip=request.remote_addr,
        reason="cancelled by staff" + (f": {reason}" if reason else ""))
    return jsonify(result.as_json())
