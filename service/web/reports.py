"""The staff Reports page (``/reports``): the numbers of ``GET /api/v1/stats``
for a period and practice, as small bar charts drawn on the server (SVG, no
script), each with the same numbers as a table, and a link to the CSV.

What each number means is in ``refflow.referrals.stats``; the page and the
API read the same ``stats.report``. A read is audited like the API's
(``stats.read``).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, current_app, render_template, request, url_for
from sqlalchemy import select

from refflow.db.models import Practice
from refflow.intake.validation import clinic_today
from refflow.referrals import stats
from refflow.web.api.stats import audit
from refflow.web.auth import WebUser, staff_required
from refflow.web.converters import is_id
from refflow.web.downloads import private
from refflow.web.formatting import CHANNEL_LABELS, DELIVERY_LABELS, duration

bp = Blueprint("reports", __name__)

COUNT_LABELS = {"received": "Received", "released": "Plan released", "held": "Held for review",
                "rejected": "Rejected", "completed": "Completed", "failed": "Delivery failed",
                "cancelled": "Cancelled", "in_progress": "Still in progress"}
TIME_LABELS = {"receipt_to_release": "Receipt to plan released",
               "receipt_to_referrer_notified": "Receipt to referrer notified",
               "held_in_review": "Time held in review"}
TIME_SHORT = {"receipt_to_release": "To plan released",
              "receipt_to_referrer_notified": "To referrer notified",
              "held_in_review": "Held in review"}

# Chart geometry (SVG user units; the SVG scales to its column's width)
WIDTH, LABEL_W, VALUE_W, ROW_H, BAR_H, PAD = 520, 190, 80, 26, 16, 6


@dataclass(frozen=True)
class Bar:
    label: str
    text: str  # the value as shown
    y: int
    width: float
    tone: str  # "main" or "second": the two series of a chart


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    bars: list[Bar]
    height: int
    legend: tuple[str, ...] = ()

    @property
    def label_x(self) -> int:
        return LABEL_W - PAD

    @property
    def bar_x(self) -> int:
        return LABEL_W


def bar_chart(chart_id: str, title: str, rows: list[tuple[str, float, str, str]],
              legend: tuple[str, ...] = ()) -> Chart:
    """Horizontal bars: ``(label, value, text, tone)`` each, scaled to the largest."""
    top = max((value for _, value, _, _ in rows), default=0) or 1
    room = WIDTH - LABEL_W - VALUE_W
    bars = [Bar(label, text, i * ROW_H, round(room * value / top, 1), tone)
            for i, (label, value, text, tone) in enumerate(rows)]
    return Chart(chart_id, title, bars, max(1, len(rows)) * ROW_H, legend)


def _hours(value: float | None) -> str:
    return "—" if value is None else duration(value * 3600)


def charts(body: dict) -> dict[str, Chart]:
    counts, times = body["counts"], body["times"]
    time_rows = []
    for key, label in TIME_SHORT.items():
        t = times[key]
        time_rows.append((f"{label}, median", t["median_hours"] or 0,
                          _hours(t["median_hours"]), "main"))
        time_rows.append((f"{label}, 90%", t["p90_hours"] or 0, _hours(t["p90_hours"]), "second"))
    return {
        "counts": bar_chart("counts", "Referrals received and what became of them", [
            (COUNT_LABELS[k], counts[k], str(counts[k]), "main" if k == "received" else "second")
            for k in stats.COUNTS]),
        "times": bar_chart("times", "How long it took from receipt (median and 90%)",
                           time_rows, legend=("median", "90th percentile")),
        "deliveries": bar_chart("deliveries", "Deliveries by channel and outcome", [
            (f"{CHANNEL_LABELS.get(d['channel'], d['channel'])}: "
             f"{DELIVERY_LABELS.get(d['status'], d['status'])}", d["count"], str(d["count"]),
             "main" if d["status"] == "sent" else "second")
            for d in body["deliveries"]]),
        "top": bar_chart("top", "Top referring practices", [
            (p["name"] or p["id"], p["referrals"], str(p["referrals"]), "main")
            for p in body["top_practices"]]),
    }


@bp.get("/reports")
@staff_required
def index(user: WebUser):
    settings = current_app.extensions["refflow.settings"]
    db = current_app.extensions["refflow.db"]
    error = None
    today = clinic_today(settings.clinic_timezone)
    try:
        period = stats.period_from(request.args.get("from") or None,
                                   request.args.get("to") or None,
                                   today=today, timezone=settings.clinic_timezone)
    except stats.InvalidPeriod as exc:
        error = {"field": exc.parameter, "message": exc.message}
        period = stats.period_from(None, None, today=today, timezone=settings.clinic_timezone)
    with db.session() as session:
        practices = session.execute(select(Practice.id, Practice.name)
                                    .order_by(Practice.name)).all()
        practice_id = request.args.get("practice") or None
        if practice_id is not None and not (is_id(practice_id)
                                            and any(p.id == practice_id for p in practices)):
            error = error or {"field": "practice", "message": "Choose a practice from the list."}
            practice_id = None
        body = stats.report(session, period, practice_id)
    audit(db, user.actor, body)
    query = {"from": period.first.isoformat(), "to": period.last.isoformat()}
    if practice_id:
        query["practice"] = practice_id
    page = render_template(
        "staff/reports.html", user=user, report=body, charts=charts(body), error=error,
        practices=practices, practice_id=practice_id, count_labels=COUNT_LABELS,
        time_labels=TIME_LABELS, max_days=stats.MAX_DAYS, hours=_hours,
        csv_url=url_for("stats_api.get_stats", format="csv", **query))
    return private(current_app.make_response((page, 400 if error else 200)))
