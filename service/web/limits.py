"""Rate limits: intake per API key and per client address, sign-in per client
address, counted with the ``limits`` library (fixed windows).

Limits are written as ``limits`` parses them (``120/minute``,
``10/minute;100/hour``). Counters live in Redis when a broker URL is
configured (shared by every web process and machine), in this process's
memory otherwise. When Redis cannot be reached, a request is counted in this
process's memory instead, neither failing open nor failing the request, and
Redis is tried again ``REDIS_RETRY_SECONDS`` later. API keys are hashed before
they reach the storage, so no key is stored in Redis. A limited request gets
429 in the JSON error envelope with ``Retry-After``.

Sign-in (``auth.login``) is registered by ``refflow.web`` after this module is
initialised, so limits are attached by endpoint name and checked before the
view runs, whatever module defines it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from flask import Flask, request
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

log = logging.getLogger("refflow.limits")

INTAKE_ENDPOINT = "referrals_api.create_referral"
FHIR_INTAKE_ENDPOINT = "fhir.receive"  # a referral Bundle: the same counters as the JSON intake
FAX_INBOUND_ENDPOINT = "faxes_api.inbound"  # a fax provider's webhook: no key, per address
LOGIN_ENDPOINT = "auth.login"
KEY_PREFIX = "refflow-limits"
REDIS_RETRY_SECONDS = 5.0


def client_address() -> str:
    return "ip:" + (request.remote_addr or "unknown")


def api_key() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return client_address()  # no key: the per-address limit is the one that counts
    return "key:" + hashlib.sha256(token.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Check:
    scope: str
    items: tuple[RateLimitItem, ...]
    key_func: object  # () -> str, for the current request


class RateLimits:
    """The checks by (endpoint, method), counted in Redis or in memory."""

    def __init__(self, checks: dict[tuple[str, str], list[Check]], redis_url: str = "") -> None:
        self.checks = checks
        self.memory = FixedWindowRateLimiter(MemoryStorage())
        self.redis = None
        if redis_url:
            storage = storage_from_string(redis_url, key_prefix=KEY_PREFIX, wrap_exceptions=True,
                                          socket_timeout=1, socket_connect_timeout=1)
            self.redis = FixedWindowRateLimiter(storage)
        self.redis_down_until = 0.0

    @property
    def storage(self) -> str:
        """Where the counts go now: "redis", or "memory"."""
        if self.redis is not None and time.monotonic() >= self.redis_down_until:
            return "redis"
        return "memory"

    def wait(self, endpoint: str | None, method: str) -> float | None:
        """Count the current request on its endpoint's limits: None when it
        is allowed, else the seconds until it would be."""
        checks = self.checks.get((endpoint, method))
        if not checks:
            return None
        counters = [(item, check.scope, check.key_func()) for check in checks
                    for item in check.items]
        if self.storage == "redis":
            try:
                return self._count(self.redis, counters)
            except StorageError as exc:
                self.redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
                log.warning("rate limits: Redis unavailable (%s); counting in memory for %.0f s",
                            type(exc.storage_error).__name__, REDIS_RETRY_SECONDS)
        return self._count(self.memory, counters)

    @staticmethod
    def _count(limiter: FixedWindowRateLimiter, counters: list) -> float | None:
        over = [(item, ids) for item, *ids in counters if not limiter.hit(item, *ids)]
        if not over:
            return None
        now = time.time()
        return max(limiter.get_window_stats(item, *ids).reset_time - now for item, ids in over)

    def check(self) -> None:
        """429 when the current request is over one of its limits."""
        wait = self.wait(request.endpoint, request.method)
        if wait is not None:
            raise TooManyRequests(retry_after=max(1, math.ceil(wait)))


def init_app(app: Flask, settings) -> RateLimits:
    broker = settings.broker_url or ""
    redis_url = broker if broker.startswith(("redis://", "rediss://")) else ""
    intake = tuple(parse_many(settings.intake_rate_limit))
    login = tuple(parse_many(settings.login_rate_limit))
    limits = RateLimits({
        (INTAKE_ENDPOINT, "POST"): [Check("intake-key", intake, api_key),
                                    Check("intake-ip", intake, client_address)],
        (FHIR_INTAKE_ENDPOINT, "POST"): [Check("intake-key", intake, api_key),
                                         Check("intake-ip", intake, client_address)],
        (LOGIN_ENDPOINT, "POST"): [Check("login-ip", login, client_address)],
        (FAX_INBOUND_ENDPOINT, "POST"): [Check("fax-inbound-ip", intake, client_address)],
    }, redis_url)
    app.before_request(limits.check)
    app.extensions["refflow.limiter"] = limits
    return limits
