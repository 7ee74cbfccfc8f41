"""Rate limits: intake per API key and per client address, sign-in per client
address.

Counters live in Redis when a broker URL is configured (shared by every web
process and machine), in memory otherwise. If Redis is unreachable the limits
fall back to per-process memory rather than failing open or failing requests
(Redis is tried again after ``REDIS_RETRY_SECONDS``). Keys are hashed before
they reach the storage, so no API key is stored in Redis. A limited request
gets 429 in the JSON error envelope with ``Retry-After``.

Sign-in (``auth.login``) is registered by ``refflow.web`` after this module is
initialised, so limits are attached by endpoint name and checked before the
view runs, whatever module defines it.

The checks cost one Redis command per limited request (fixed windows: one
script increments every counter of the request and sets new ones' expiry) or a few dictionary operations in memory (moving windows). Limits are
written as the ``limits`` package parses them (``120/minute``,
``10/minute;100/hour``). Flask-Limiter is not used: it extracted a stack trace
on every check and its memory storage restarted an expiry timer thread on
nearly every hit.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, request
from limits import RateLimitItem, parse_many
from werkzeug.exceptions import TooManyRequests

log = logging.getLogger("refflow.limits")

INTAKE_ENDPOINT = "referrals_api.create_referral"
LOGIN_ENDPOINT = "auth.login"
KEY_PREFIX = "refflow-limits"
REDIS_RETRY_SECONDS = 5.0


# What a request's limits were counted as, left in the WSGI environ by a
# handler that counted them before the Flask app saw the request (the intake
# fast path): seconds to wait, or None when allowed. The hook then does not
# count the request a second time.
COUNTED_ENVIRON_KEY = "refflow.limits.wait"
_NOT_COUNTED = object()


def _allowed() -> None:
    return None


def _client_address(remote_addr: str | None, authorization: str) -> str:
    return "ip:" + (remote_addr or "unknown")


def _api_key(remote_addr: str | None, authorization: str) -> str:
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        # no key: the per-address limit is the one that counts
        return _client_address(remote_addr, authorization)
    return "key:" + hashlib.sha256(token.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Check:
    scope: str
    items: tuple[RateLimitItem, ...]
    key_func: object  # (remote address, Authorization header) -> str


class MemoryCounters:
    """Moving windows in this process: per key, the times of the hits still in
    the window (oldest first). Thread-safe; idle keys are swept now and then."""

    SWEEP_SECONDS = 60.0

    def __init__(self) -> None:
        self._hits: dict[str, deque] = {}
        self._lock = threading.Lock()
        self._next_sweep = time.monotonic() + self.SWEEP_SECONDS
        self._longest = 0.0

    def hit(self, counters: list[tuple[str, RateLimitItem]]) -> float | None:
        """Count one hit on each counter unless one is full; returns None when
        allowed, else seconds until the fullest counter has room."""
        now = time.monotonic()
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            wait = 0.0
            windows = []
            for key, item in counters:
                expiry = item.get_expiry()
                self._longest = max(self._longest, expiry)
                hits = self._hits.get(key)
                if hits is None:
                    hits = self._hits[key] = deque()
                while hits and hits[0] <= now - expiry:
                    hits.popleft()
                if len(hits) >= item.amount:
                    wait = max(wait, hits[len(hits) - item.amount] + expiry - now)
                windows.append(hits)
            if wait > 0:
                return wait
            for hits in windows:
                hits.append(now)
            return None

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self.SWEEP_SECONDS
        for key in [k for k, hits in self._hits.items()
                    if not hits or hits[-1] <= now - self._longest]:
            del self._hits[key]

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()


# INCR every counter of a request, giving a new one its expiry, atomically and
# in one command (EVALSHA; the script is loaded again if Redis lost it).
_HIT_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ARGV[i]) end
  counts[i] = n
end
return counts
"""


def _command(*args) -> bytes:
    """A Redis command in the protocol's own encoding (RESP), written directly:
    redis-py's general encoder cost more than the rest of a count."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RedisCounters:
    """Fixed windows in Redis, every counter of a request in one round trip.

    Each thread keeps one connection of its own and sends the script by its
    SHA (EVALSHA; EVAL once if Redis does not know it): no pool checkout, retry
    wrapper or reply callbacks per request. A connection Redis closed (a
    restart) is reconnected once before the request gives up on Redis.
    """

    def __init__(self, url: str) -> None:
        import redis

        pool = redis.ConnectionPool.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self._connection_class = pool.connection_class
        self._connection_kwargs = dict(pool.connection_kwargs)
        self._local = threading.local()
        self.sha = hashlib.sha1(_HIT_SCRIPT.encode()).hexdigest()
        self._no_script = redis.exceptions.NoScriptError
        self._reconnect = (redis.ConnectionError, ConnectionError)
        self.errors = (redis.RedisError, OSError)

    def _connection(self):
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():  # first use in this thread, or forked
            conn = local.conn = self._connection_class(**self._connection_kwargs)
            local.pid = os.getpid()
            local.unread = False
        elif local.unread:  # a reply never read (its request failed): start clean
            conn.disconnect()
            local.unread = False
        return conn

    def _call(self, *args):
        conn = self._connection()
        for attempt in (1, 2):
            try:
                conn.send_command(*args)
                return conn.read_response()
            except self._reconnect:
                conn.disconnect()
                if attempt == 2:
                    raise
            except BaseException:
                conn.disconnect()  # never leave a half-read reply on the socket
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def eval(self, keys: list[str], args: list) -> list:
        try:
            return self._call("EVALSHA", self.sha, len(keys), *keys, *args)
        except self._no_script:  # Redis restarted or flushed its scripts
            return self._call("EVAL", _HIT_SCRIPT, len(keys), *keys, *args)

    def send(self, counters: list[tuple[str, RateLimitItem]]) -> tuple:
        """Send the hit on every counter without waiting for Redis's reply;
        ``receive`` reads it. Between the two the caller may do other work
        (the reply arrives meanwhile)."""
        now = time.time()
        keys, ttls, resets = [], [], []
        for key, item in counters:
            expiry = item.get_expiry()
            window = int(now // expiry)
            keys.append(f"{key}:{expiry}:{window}")
            ttls.append(expiry + 1)
            resets.append((window + 1) * expiry)
        conn = self._connection()
        try:
            conn.send_packed_command([_command("EVALSHA", self.sha, len(keys), *keys, *ttls)],
                                     check_health=False)
            self._local.unread = True
            sent = True
        except self._reconnect:  # a connection Redis closed: receive() sends it again
            conn.disconnect()
            sent = False
        return now, keys, ttls, resets, sent

    def receive(self, counters: list[tuple[str, RateLimitItem]], pending: tuple) -> float | None:
        """The seconds to wait (None: allowed) for a hit ``send`` sent."""
        now, keys, ttls, resets, sent = pending
        counts = None
        if sent:
            conn = self._local.conn
            try:
                counts = conn.read_response()
                self._local.unread = False
            except self._no_script:  # Redis restarted or flushed its scripts
                self._local.unread = False
                counts = self._call("EVAL", _HIT_SCRIPT, len(keys), *keys, *ttls)
            except self._reconnect:
                conn.disconnect()
                self._local.unread = False
            except BaseException:
                conn.disconnect()  # never leave a half-read reply on the socket
                self._local.unread = False
                raise
        if counts is None:  # sent on a closed connection: once more, on a new one
            counts = self.eval(keys, ttls)
        wait = 0.0
        for (_key, item), count, reset in zip(counters, counts, resets):
            if count > item.amount:
                wait = max(wait, reset - now)
        return wait if wait > 0 else None

    def hit(self, counters: list[tuple[str, RateLimitItem]]) -> float | None:
        return self.receive(counters, self.send(counters))


class RateLimits:
    """The checks by (endpoint, method) and the storage that counts them."""

    def __init__(self, checks: dict[tuple[str, str], list[Check]], redis_url: str = "") -> None:
        self.checks = checks
        self.memory = MemoryCounters()
        self.redis = RedisCounters(redis_url) if redis_url else None
        self._redis_down_until = 0.0
        self.storage = "redis" if self.redis else "memory"

    def start_count(self, endpoint: str | None, method: str, remote_addr: str | None,
                    authorization: str) -> Callable[[], float | None]:
        """Count one request on its endpoint's limits, and return what tells
        the outcome: None when it is allowed, else the seconds until it would
        be. With Redis the count is sent now and its answer read when asked,
        so the caller can work while it travels; the caller must ask."""
        checks = self.checks.get((endpoint, method))
        if not checks:
            return _allowed
        counters = [(f"{KEY_PREFIX}:{check.scope}:"
                     f"{check.key_func(remote_addr, authorization)}:{item.amount}", item)
                    for check in checks for item in check.items]
        redis = self.redis
        if redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                pending = redis.send(counters)
            except redis.errors as exc:
                self._redis_failed(exc)
            else:
                def outcome() -> float | None:
                    try:
                        return redis.receive(counters, pending)
                    except redis.errors as exc:
                        self._redis_failed(exc)
                        return self.memory.hit(counters)
                return outcome
        wait = self.memory.hit(counters)
        return lambda: wait

    def count(self, endpoint: str | None, method: str, remote_addr: str | None,
              authorization: str) -> float | None:
        """Count one request on its endpoint's limits: None when it is allowed,
        else the seconds until it would be."""
        return self.start_count(endpoint, method, remote_addr, authorization)()

    def check(self, endpoint: str | None, method: str) -> None:
        """The Flask request's limits (counted unless a handler before the app
        counted them); 429 when over."""
        wait = request.environ.get(COUNTED_ENVIRON_KEY, _NOT_COUNTED)
        if wait is _NOT_COUNTED:
            wait = self.count(endpoint, method, request.remote_addr,
                              request.headers.get("Authorization", ""))
        if wait is not None:
            raise TooManyRequests(retry_after=max(1, math.ceil(wait)))

    def _redis_failed(self, exc: Exception) -> None:
        self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        log.warning("rate limits: Redis unavailable (%s); counting in memory for %.0f s",
                    type(exc).__name__, REDIS_RETRY_SECONDS)

    def reset(self) -> None:
        self.memory.clear()


def init_app(app: Flask, settings) -> RateLimits:
    storage = app.config.get("RATELIMIT_STORAGE_URI") or settings.broker_url or ""
    redis_url = storage if storage.startswith(("redis://", "rediss://", "unix://")) else ""
    intake = tuple(parse_many(settings.intake_rate_limit))
    login = tuple(parse_many(settings.login_rate_limit))
    limits = RateLimits({
        (INTAKE_ENDPOINT, "POST"): [Check("intake-key", intake, _api_key),
                                    Check("intake-ip", intake, _client_address)],
        (LOGIN_ENDPOINT, "POST"): [Check("login-ip", login, _client_address)],
    }, redis_url)

    @app.before_request
    def _rate_limits() -> None:
        limits.check(request.endpoint, request.method)  # raises 429 when over

    app.extensions["refflow.limiter"] = limits
    return limits
