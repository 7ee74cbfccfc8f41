"""Rate limits (Flask-Limiter): intake per API key and per client address, and
sign-in per client address.

Counters live in Redis when a broker URL is configured (shared by every web
process and machine), in memory otherwise. If Redis is unreachable the limits
fall back to per-process memory rather than failing open or failing requests.
Keys are hashed before they reach the storage, so no API key is stored in
Redis. A limited request gets 429 in the JSON error envelope with
``Retry-After``.

Sign-in (``auth.login``) is registered by ``refflow.web`` after this module is
initialised, so limits are attached by endpoint name and checked before the
view runs, whatever module defines it.
"""

from __future__ import annotations

import hashlib

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

INTAKE_ENDPOINT = "referrals_api.create_referral"
LOGIN_ENDPOINT = "auth.login"


def _client_address() -> str:
    return "ip:" + (get_remote_address() or "unknown")


def _api_key() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return _client_address()  # no key: the per-address limit is the one that counts
    return "key:" + hashlib.sha256(token.encode()).hexdigest()[:32]


def init_app(app: Flask, settings) -> Limiter:
    storage = settings.broker_url or "memory://"
    if app.config.get("RATELIMIT_STORAGE_URI"):
        storage = app.config["RATELIMIT_STORAGE_URI"]
    limiter = Limiter(
        key_func=_client_address,
        storage_uri=storage,
        storage_options={"socket_timeout": 1, "socket_connect_timeout": 1}
        if storage.startswith("redis") else {},
        strategy="moving-window" if storage.startswith("memory") else "fixed-window",
        headers_enabled=True,
        in_memory_fallback_enabled=True,
        key_prefix="refflow-limits",
    )
    limiter.init_app(app)
    intake = settings.intake_rate_limit
    login = settings.login_rate_limit
    checks = {
        (INTAKE_ENDPOINT, "POST"): [
            limiter.limit(intake, key_func=_api_key, scope="intake-key"),
            limiter.limit(intake, key_func=_client_address, scope="intake-ip"),
        ],
        (LOGIN_ENDPOINT, "POST"): [
            limiter.limit(login, key_func=_client_address, scope="login-ip"),
        ],
    }

    @app.before_request
    def _rate_limits() -> None:
        for limit in checks.get((request.endpoint, request.method), ()):
            with limit:  # raises RateLimitExceeded (429) when over
                pass

    app.extensions["refflow.limiter"] = limiter
    return limiter
