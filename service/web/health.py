"""Liveness and readiness: /healthz (process up), /readyz (database, migrations, broker)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from refflow.db import migrate

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    checks: dict[str, str] = {}
    db = current_app.extensions["refflow.db"]
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        checks["migrations"] = "ok" if migrate.at_head(db) else "not at head: run refflow db upgrade"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"unreachable ({type(exc).__name__})"
    broker_stats = current_app.extensions.get("refflow.broker_stats")
    if broker_stats is not None:
        try:
            broker_stats()
            checks["broker"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["broker"] = f"unreachable ({type(exc).__name__})"
    ready = all(v == "ok" for v in checks.values())
    response = jsonify({"status": "ready" if ready else "not_ready", "checks": checks})
    response.status_code = 200 if ready else 503
    return response
