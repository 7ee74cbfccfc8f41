"""The Flask application factory."""

from __future__ import annotations

import datetime as dt

from flask import Flask, g, request

from refflow.config import Settings, load_settings
from refflow.db import database_for
from refflow.ops.logging import request_id_for


def create_app(settings: Settings | None = None, test_config: dict | None = None) -> Flask:
    """Build the WSGI app. Nothing is created at import time."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes + 64 * 1024,  # headroom for form encoding
        IDEMPOTENCY_RETENTION=dt.timedelta(hours=settings.idempotency_retention_hours),
        JSON_SORT_KEYS=False,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="refflow_session",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(minutes=settings.session_idle_minutes),
    )
    app.json.sort_keys = False
    if test_config:
        app.config.update(test_config)

    app.extensions["refflow.settings"] = settings
    app.extensions["refflow.db"] = database_for(settings)

    @app.before_request
    def _request_id() -> None:
        g.request_id = request_id_for(request.environ)

    from refflow.intake.api import bp as referrals_api
    from refflow.ops import errors
    from refflow.ops.health import bp as health
    from refflow.pipeline.hooks import install_status_hook, problem_finder
    from refflow.pipeline.steps import Pipeline
    from refflow.referrals.staff_api import bp as staff_api

    # The web process never publishes to the broker in a request (a broker
    # outage must not hang intake): the scheduler's relay sends the outbox.
    app.extensions["refflow.pipeline"] = Pipeline(settings, db=app.extensions["refflow.db"])
    app.extensions["refflow.find_problems"] = problem_finder(settings)
    install_status_hook(settings)
    if settings.broker_url:
        from refflow.workers.monitor import broker_stats_reader

        stats = broker_stats_reader(settings.broker_url)
        app.extensions["refflow.broker_stats"] = stats
        app.extensions["refflow.broker_check"] = lambda: stats()

    from refflow import ops, web
    from refflow.plugins.api import bp as plugins_api

    errors.init_app(app, html_handler=web.error_page)
    app.register_blueprint(health)
    app.register_blueprint(referrals_api)
    app.register_blueprint(staff_api)
    app.register_blueprint(plugins_api)
    from refflow.intake import fast_path

    fast_path.install(app)  # the common intake request, in front of Flask (PostgreSQL)
    ops.init_app(app)  # metrics, OpenAPI, rate limits, security headers, JSON logs
    web.init_app(app)  # staff dashboard, practice portal, sign-in
    return app
