"""``GET /api/v1/stats?from=&to=&practice=`` (staff): the Reports page's numbers
as JSON, or as CSV (``?format=csv`` or ``Accept: text/csv``). What each
number means is in ``refflow.referrals.stats``."""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, current_app, jsonify, request

from refflow.db.models import AuditEntry, Practice
from refflow.intake.validation import clinic_today
from refflow.referrals import stats
from refflow.web.converters import is_id
from refflow.web.downloads import private
from refflow.web.errors import ApiError
from refflow.web.principal import require_staff

bp = Blueprint("stats_api", __name__, url_prefix="/api/v1")

FORMATS = ("json", "csv")
CSV_HEADER = ("section", "item", "measure", "value")
# A cell a spreadsheet would run as a formula (a practice named "=HYPERLINK(…)")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def stats_report(args, db, settings) -> dict:
    """The report for the query ``args`` (``from``, ``to``, ``practice``);
    ``ApiError`` 422 naming the parameter that is wrong."""
    try:
        period = stats.period_from(args.get("from"), args.get("to"),
                                   today=clinic_today(settings.clinic_timezone),
                                   timezone=settings.clinic_timezone)
    except stats.InvalidPeriod as exc:
        raise ApiError(422, exc.message, fields={exc.parameter: "invalid"}) from None
    practice_id = args.get("practice") or None
    with db.session() as session:
        if practice_id is not None and (not is_id(practice_id) or session.get(
                Practice, practice_id) is None):
            raise ApiError(422, "practice must be the id of a practice",
                           fields={"practice": "unknown practice"})
        return stats.report(session, period, practice_id)


def audit(db, actor: str, body: dict) -> None:
    detail = f"{body['period']['from']}..{body['period']['to']}"
    if body["practice"]:
        detail += f" practice {body['practice']['id']}"
    with db.session() as session:
        session.add(AuditEntry(actor=actor, action="stats.read", ip=request.remote_addr,
                               detail=detail))


def wants_csv() -> bool:
    fmt = request.args.get("format")
    if fmt is not None:
        if fmt not in FORMATS:
            raise ApiError(422, "format must be json or csv", fields={"format": "invalid"})
        return fmt == "csv"
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"])
    return best == "text/csv"


def _cell(value) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_response(body: dict) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    writer.writerows([_cell(v) for v in row] for row in stats.csv_rows(body))
    name = f"refflow-stats-{body['period']['from']}-to-{body['period']['to']}.csv"
    # UTF-8 with a byte order mark: how Excel knows the file is UTF-8
    response = Response("\ufeff" + out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return private(response)


@bp.get("/stats")
def get_stats():
    staff = require_staff()
    as_csv = wants_csv()
    db = current_app.extensions["refflow.db"]
    body = stats_report(request.args, db, current_app.extensions["refflow.settings"])
    audit(db, staff.actor, body)
    return csv_response(body) if as_csv else private(jsonify(body))
