"""The Flask application factory."""

from __future__ import annotations

import datetime as dt
import os

from flask import Flask, g, request

from refflow.config import Settings, load_settings
from refflow.db import database_for
from refflow.ops.logging import request_id_for, request_id_var
from refflow.web.converters import CONVERTERS, IdRule


def create_app(settings: Settings | None = None, test_config: dict | None = None) -> Flask:
    """Build the WSGI app. Nothing is created at import time."""
    settings = settings or load_settings()
    app = Flask(__name__)
    # before any route: a <referral_id>, <delivery_id>, ... is a refflow id or a 404
    app.url_map.converters.update(CONVERTERS)
    app.url_rule_class = IdRule
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
        g.request_id = request_id_for(request.headers.get("X-Request-Id"))
        g.request_id_token = request_id_var.set(g.request_id)  # for log lines

    @app.teardown_request
    def _forget_request_id(_exc=None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            request_id_var.reset(token)

    from refflow.pipeline.context import Pipeline
    from refflow.pipeline.intake_rules import problem_finder

    # The web process never publishes to the broker in a request (a broker
    # outage must not hang intake): the scheduler's relay sends the outbox.
    app.extensions["refflow.pipeline"] = Pipeline(settings, db=app.extensions["refflow.db"])
    app.extensions["refflow.find_problems"] = problem_finder(settings)
    if settings.broker_url:
        from refflow.ops.queues import broker_stats_reader

        app.extensions["refflow.broker_stats"] = broker_stats_reader(settings.broker_url)

    from refflow import web
    from refflow.web import bulk, errors, fhir, headers, health, limits, metrics
    from refflow.web.api import faxes, openapi, plugins, referrals, staff, stats

    errors.init_app(app, html_handler=web.error_page)
    for blueprint in (health.bp, referrals.bp, staff.bp, faxes.bp, plugins.bp, openapi.bp,
                      fhir.bp, stats.bp, bulk.bp, bulk.api_bp):
        app.register_blueprint(blueprint)
    # REFFLOW_PROXY_HOPS: how many reverse proxies (TLS terminators) sit in
    # front; only then are X-Forwarded-For/-Proto believed (client address for
    # rate limits and audit, HTTPS for HSTS and secure cookies)
    hops = int(os.environ.get("REFFLOW_PROXY_HOPS", 0))
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    headers.init_app(app)
    metrics.init_app(app)
    limits.init_app(app, settings)
    web.init_app(app)  # staff dashboard, practice portal, sign-in
    return app
