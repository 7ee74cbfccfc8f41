"""Failed sign-ins, counted per account and per client address, shared by
every web process (Redis) and slowed by a growing delay, not a hard lock.

Counters
    ``refflow-signin:acct:<h>`` for an account, where ``<h>`` is an HMAC (with
    the secret key) of the normalised email, so Redis and the logs never hold
    an email; ``refflow-signin:addr:<address>`` for a client address (the
    address the rate limits use, ``limits.client_address``). Each is a hash of
    ``failures`` and ``next_at`` (the server time before which the next
    attempt is refused).

Growing delay
    The first ``free`` attempts of a counter are not slowed; after the
    ``n``-th (``n >= free``) the next attempt waits
    ``min(base * 2 ** (n - free), max)`` seconds: 1 s, 2 s, 4 s ... 15 min by
    default. An attempt inside the delay is refused (429 with Retry-After)
    whatever the password, and is not counted, so the delay only grows with
    passwords actually checked. A counter is forgotten ``forget`` seconds
    after its delay ran out with no attempt in between.

    So from a clean start an account gets at most ``free`` password checks,
    then one more each time a delay ran out: ``guesses_allowed`` is that
    limit for a period of ``t`` seconds, however many web processes and
    client addresses the guesses come from.

Account attempts are charged before the password is checked (one atomic
Redis script decides and charges, so two processes never both take the same
slot) and a successful sign-in deletes the account's counter. A client
address is charged after a failed check only, with a separate, higher
``address_free`` budget: it slows one address spraying many accounts.

Trusted browsers
    A successful sign-in leaves a signed device cookie naming the account. A
    later attempt for that account from a browser holding it is counted on
    a counter of that account and browser (``acct:<h>:dev:<id>``), not the
    account's shared one, so failures from elsewhere never slow the account's
    owner on a browser they signed in with before; an attacker cannot make
    such a cookie without the secret key.

Unlocking
    An administrator can forget an account's counters (``clear_account``:
    the shared one and its trusted browsers'), from the staff Users page or
    ``refflow user unlock``; ``waits`` says which accounts are slowed now.

Without Redis (no ``redis://`` broker URL, or Redis not answering) the
counts live in this process's memory: still a growing delay, but per process
and forgotten on restart. ``refflow run`` always has Redis; an outage is
retried ``REDIS_RETRY_SECONDS`` later, as the rate limits do.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

log = logging.getLogger("refflow.signin")

KEY_PREFIX = "refflow-signin"
REDIS_RETRY_SECONDS = 5.0
MEMORY_MAX_KEYS = 50_000
DEVICE_COOKIE = "refflow_device"
DEVICE_MAX_AGE = 90 * 24 * 3600

# KEYS: the counters to check (all) and to charge (the first ``ARGV[1]``).
# ARGV: charge count, base, max, forget, then each key's free budget.
# Returns {allowed (1/0), seconds to wait as a string}.
_ATTEMPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait = 0
for _, key in ipairs(KEYS) do
  local at = tonumber(redis.call('HGET', key, 'next_at') or '0')
  if at - now > wait then wait = at - now end
end
if wait > 0 then return {0, tostring(wait)} end
local base, cap, forget = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 1, tonumber(ARGV[1]) do
  local key, free = KEYS[i], tonumber(ARGV[4 + i])
  local n = redis.call('HINCRBY', key, 'failures', 1)
  local delay = 0
  if n >= free then delay = math.min(base * 2 ^ (n - free), cap) end
  redis.call('HSET', key, 'next_at', tostring(now + delay))
  redis.call('PEXPIRE', key, math.ceil((delay + forget) * 1000))
end
return {1, '0'}
"""


@dataclass(frozen=True)
class Policy:
    free: int = 5
    address_free: int = 20
    base: float = 1.0
    cap: float = 900.0
    forget: float = 3600.0

    @classmethod
    def from_settings(cls, settings) -> Policy:
        return cls(free=max(1, settings.login_free_failures),
                   address_free=max(1, settings.login_address_free_failures),
                   base=settings.login_delay_base_seconds,
                   cap=settings.login_delay_max_seconds,
                   forget=settings.login_forget_seconds)

    def delay(self, failures: int, free: int | None = None) -> float:
        """The wait after the ``failures``-th charged attempt of a counter
        with ``free`` (the account's by default) unslowed attempts."""
        free = self.free if free is None else free
        if failures < free:
            return 0.0
        return min(self.base * 2.0 ** min(failures - free, 64), self.cap)

    def guesses_allowed(self, seconds: float) -> int:
        """The most passwords checked for one account (shared counter) in a
        period of ``seconds`` from a clean start: ``free``, then one more
        each time a delay ran out."""
        allowed, spent = self.free, 0.0
        while True:
            spent += self.delay(allowed)
            if spent > seconds:
                return allowed
            allowed += 1


class _Memory:
    """The same counters in this process (no Redis, or Redis down)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, list[float]] = {}  # key -> [failures, next_at, forget_at]

    def attempt(self, keys: list[str], charge: int, policy: Policy,
                frees: list[int]) -> float | None:
        now = time.time()
        with self._lock:
            rows = [self._rows.get(k) for k in keys]
            rows = [r if r and r[2] > now else None for r in rows]
            wait = max((r[1] - now for r in rows if r), default=0.0)
            if wait > 0:
                return wait
            for key, row, free in zip(keys[:charge], rows, frees):
                failures = (row[0] if row else 0) + 1
                delay = policy.delay(failures, free)
                self._rows.pop(key, None)
                self._rows[key] = [failures, now + delay, now + delay + policy.forget]
            if len(self._rows) > MEMORY_MAX_KEYS:
                for key in [k for k, r in self._rows.items() if r[2] <= now]:
                    del self._rows[key]
                while len(self._rows) > MEMORY_MAX_KEYS:  # the oldest first
                    self._rows.pop(next(iter(self._rows)))
            return None

    def clear(self, key: str) -> None:
        with self._lock:
            self._rows.pop(key, None)

    def clear_prefix(self, key: str) -> None:
        """The counter ``key`` and its trusted browsers' (``key:dev:...``)."""
        with self._lock:
            for name in [k for k in self._rows if k == key or k.startswith(key + ":dev:")]:
                del self._rows[name]

    def wait(self, key: str) -> float:
        with self._lock:
            row = self._rows.get(key)
        return max(0.0, row[1] - time.time()) if row else 0.0


class SigninThrottle:
    """Decides whether a sign-in attempt may check a password, and counts it."""

    def __init__(self, policy: Policy, secret_key: str, redis_url: str = "",
                 device_cookie: str = DEVICE_COOKIE) -> None:
        self.policy = policy
        self._secret = secret_key.encode()
        self.memory = _Memory()
        self.redis = None
        self.redis_down_until = 0.0
        self.device_cookie = device_cookie
        self._devices = URLSafeTimedSerializer(secret_key, salt="refflow-signin-device")
        if redis_url:
            import redis

            self.redis = redis.Redis.from_url(redis_url, socket_timeout=1,
                                              socket_connect_timeout=1)
            self._script = self.redis.register_script(_ATTEMPT)

    # -- keys ---------------------------------------------------------------
    def account(self, email: str) -> str:
        """The account's id in keys and logs: no email, the same in every process."""
        normal = email.strip().lower().encode()
        return hmac.new(self._secret, normal, hashlib.sha256).hexdigest()[:32]

    def account_key(self, account: str, device: str | None = None) -> str:
        return f"{KEY_PREFIX}:acct:{account}" + (f":dev:{device}" if device else "")

    @staticmethod
    def address_key(address: str) -> str:
        return f"{KEY_PREFIX}:addr:{address}"

    # -- trusted browsers ---------------------------------------------------
    def device_for(self, account: str, cookie: str | None) -> str | None:
        """The browser's id when its device cookie is for this account."""
        if not cookie:
            return None
        try:
            data = self._devices.loads(cookie, max_age=DEVICE_MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not hmac.compare_digest(str(data.get("a")), account):
            return None
        device = str(data.get("d") or "")
        return device if device.isalnum() and len(device) <= 32 else None

    def new_device_cookie(self, account: str, device: str | None = None) -> str:
        return self._devices.dumps({"a": account, "d": device or secrets.token_hex(8)})

    # -- counting -----------------------------------------------------------
    @property
    def storage(self) -> str:
        if self.redis is not None and time.monotonic() >= self.redis_down_until:
            return "redis"
        return "memory"

    def _run(self, keys: list[str], charge: int, frees: list[int]) -> float | None:
        if self.storage == "redis":
            import redis

            p = self.policy
            try:
                allowed, wait = self._script(keys=keys,
                                             args=[charge, p.base, p.cap, p.forget, *frees])
                return None if int(allowed) else float(wait)
            except redis.RedisError as exc:
                self.redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
                log.warning("sign-in throttle: Redis unavailable (%s); counting in memory "
                            "for %.0f s", type(exc).__name__, REDIS_RETRY_SECONDS)
        return self.memory.attempt(keys, charge, self.policy, frees)

    def attempt(self, account: str, address: str, device: str | None = None) -> float | None:
        """Before checking a password: None when it may be checked (the
        attempt is then charged to the account), else the seconds to wait."""
        return self._run([self.account_key(account, device), self.address_key(address)], 1,
                         [self.policy.free])

    def failed(self, address: str) -> None:
        """After a wrong password: charge the client address."""
        self._run([self.address_key(address)], 1, [self.policy.address_free])

    def succeeded(self, account: str, device: str | None = None) -> None:
        """After a right password: the account's counter starts again."""
        key = self.account_key(account, device)
        self.memory.clear(key)
        if self.storage == "redis":
            import redis

            try:
                self.redis.delete(key)
            except redis.RedisError as exc:
                log.warning("sign-in throttle: Redis unavailable (%s)", type(exc).__name__)

    # -- administrators -----------------------------------------------------
    def clear_account(self, email: str) -> None:
        """Unlock an account: forget its failed sign-ins, its shared counter
        and those of each trusted browser. Raises ``ThrottleUnavailable``
        when Redis is configured but does not answer (nothing was cleared)."""
        key = self.account_key(self.account(email))
        self.memory.clear_prefix(key)
        if self.redis is not None:
            import redis

            try:
                keys = [key, *self.redis.scan_iter(match=f"{key}:dev:*", count=1000)]
                self.redis.delete(*keys)
            except redis.RedisError as exc:
                raise ThrottleUnavailable("the sign-in counters (Redis) did not answer "
                                          f"({type(exc).__name__}); try again") from None

    def waits(self, emails: list[str]) -> dict[str, float]:
        """Each account's seconds before its shared counter allows another
        attempt (0 when it is not slowed): what the Users page shows as locked."""
        keys = {email: self.account_key(self.account(email)) for email in emails}
        if self.storage == "redis":
            import redis

            try:
                pipe = self.redis.pipeline(transaction=False)
                pipe.time()
                for key in keys.values():
                    pipe.hget(key, "next_at")
                (seconds, micros), *next_ats = pipe.execute()
            except redis.RedisError:
                return dict.fromkeys(emails, 0.0)
            now = seconds + micros / 1e6
            return {email: max(0.0, float(at or 0) - now) for email, at in zip(keys, next_ats)}
        return {email: self.memory.wait(key) for email, key in keys.items()}


class ThrottleUnavailable(RuntimeError):
    """The shared sign-in counters cannot be reached."""


def wait_text(seconds: float) -> str:
    """"3 seconds", "1 minute", "15 minutes": rounded up, as a person reads it."""
    whole = max(1, math.ceil(seconds))
    if whole < 60:
        return f"{whole} second{'s' if whole != 1 else ''}"
    minutes = math.ceil(whole / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def from_settings(settings) -> SigninThrottle:
    """The throttle of these settings: Redis when the broker is Redis."""
    broker = settings.broker_url or ""
    redis_url = broker if broker.startswith(("redis://", "rediss://")) else ""
    cookie = DEVICE_COOKIE if settings.embedded else "__Host-" + DEVICE_COOKIE
    return SigninThrottle(Policy.from_settings(settings), settings.secret_key, redis_url,
                          device_cookie=cookie)


def init_app(app, settings) -> SigninThrottle:
    throttle = from_settings(settings)
    app.extensions["refflow.signin_throttle"] = throttle
    return throttle


def for_app(app) -> SigninThrottle:
    """The app's throttle, made on first use."""
    throttle = app.extensions.get("refflow.signin_throttle")
    if throttle is None:
        throttle = init_app(app, app.extensions["refflow.settings"])
    return throttle
