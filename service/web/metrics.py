"""``GET /metrics`` (Prometheus text format) and the per-request samples
behind it (``refflow.ops.metrics``): labels are route rules, never URLs.
A request that fails on the server is also logged (rule and status only)."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, current_app, g, request

from refflow.ops import metrics

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
    body, content_type = metrics.render(current_app.extensions["refflow.db"],
                                        current_app.extensions.get("refflow.broker_stats"))
    return Response(body, content_type=content_type)
