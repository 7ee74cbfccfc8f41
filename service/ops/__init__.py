"""Operations: errors, health, metrics, OpenAPI, rate limits, security headers, logging."""

from __future__ import annotations

import os


def init_app(app) -> None:
    """Install the operational parts on ``app`` (called by ``create_app``)."""
    from refflow.ops import headers, limits, logging, metrics, openapi

    settings = app.extensions["refflow.settings"]
    # REFFLOW_PROXY_HOPS: how many reverse proxies (TLS terminators) sit in front;
    # only then are X-Forwarded-For/-Proto trusted (client address, HSTS).
    hops = int(getattr(settings, "proxy_hops", 0) or os.environ.get("REFFLOW_PROXY_HOPS", 0))
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    headers.init_app(app)
    logging.init_app(app)
    metrics.init_app(app)
    limits.init_app(app, settings)
    openapi.init_app(app)
