"""``GET /metrics`` (Prometheus text format) and the per-request samples
behind it (``refflow.ops.metrics``): labels are route rules, never URLs.
A request that fails on the server is also logged (rule and status only).
With ``REFFLOW_METRICS_TOKEN`` set, a scrape must send it as a bearer token."""

from __future__ import annotations

import hmac
import logging
import time

from flask import Flask, Response, current_app, g, request

from refflow.ops import metrics
from refflow.web.errors import ApiError

log = logging.getLogger("refflow.http")


def init_app(app: Flask) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.metrics_start = time.perf_counter()

    @app.after_request
    def _observe(response):
        start = g.pop("metrics_start", None)
        rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        if response.status_code >= 500:
            log.warning("%s %s -> %d", request.method, rule, response.status_code)
        if start is not None and rule != "/metrics":
            # the intake view leaves the referral's status in g
            metrics.observe_request(request.method, rule, response.status_code,
                                    time.perf_counter() - start, g.get("intake_outcome"))
        return response

    app.add_url_rule("/metrics", "metrics", serve_metrics)


def serve_metrics():
    _check_token(current_app.extensions["refflow.settings"].metrics_token)
    body, content_type = metrics.render(current_app.extensions["refflow.db"],
                                        current_app.extensions.get("refflow.broker_stats"))
    return Response(body, content_type=content_type)


def _check_token(token: str) -> None:
    """Nothing when no token is set or the request sends it; else a 401."""
    if not token:
        return
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(),
                                                             token.encode()):
        raise ApiError(401, "send the metrics token: Authorization: Bearer <token>",
                       code="unauthorized",
                       headers={"WWW-Authenticate": 'Bearer realm="refflow metrics"'})
