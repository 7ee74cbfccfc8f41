"""Rate-limit storage: Redis counts for every web process, memory when Redis is
unreachable (neither failing open nor failing the request)."""

from __future__ import annotations

import uuid

from refflow.app import create_app
from refflow.embedded import free_port


def _post(client, body, key, addr):
    return client.post("/api/v1/referrals", json=body, headers={"Authorization": f"Bearer {key}"},
                       environ_base={"REMOTE_ADDR": addr})


def test_intake_limits_count_in_redis_across_apps(settings, make_practice, referral_body,
                                                  redis_server):
    # a unique limit string per run: the counters of earlier runs never match
    limit = f"{2 + uuid.uuid4().int % 1000}/hour"
    amount = int(limit.split("/")[0])
    tuned = settings.with_overrides(intake_rate_limit=limit, broker_url=redis_server.url)
    one = create_app(tuned, {"TESTING": True}).test_client()
    two = create_app(tuned, {"TESTING": True}).test_client()  # another web process
    assert one.application.extensions["refflow.limiter"].storage == "redis"
    _, key = make_practice()
    addr = f"198.51.100.{uuid.uuid4().int % 250}"
    statuses = [_post(one if i % 2 else two, referral_body, key, addr).status_code
                for i in range(amount + 1)]
    assert statuses == [202] * amount + [429]
    limited = _post(one, referral_body, key, addr)
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert 0 < int(limited.headers["Retry-After"]) <= 3601


def test_unreachable_redis_falls_back_to_memory(settings, make_practice, referral_body):
    tuned = settings.with_overrides(intake_rate_limit="2/minute",
                                    broker_url=f"redis://127.0.0.1:{free_port()}/0")
    client = create_app(tuned, {"TESTING": True}).test_client()
    _, key = make_practice()
    statuses = [_post(client, referral_body, key, "203.0.113.9").status_code for _ in range(3)]
    assert statuses == [202, 202, 429]


def test_limits_keep_counting_in_redis_after_redis_restarts(settings, make_practice,
                                                            referral_body, redis_server):
    """A restarted Redis drops the web process's connections and forgets the
    counting script: the next check reconnects and loads it again instead of
    falling back to memory."""
    import redis

    tuned = settings.with_overrides(intake_rate_limit=f"{5 + uuid.uuid4().int % 1000}/hour",
                                    broker_url=redis_server.url)
    client = create_app(tuned, {"TESTING": True}).test_client()
    limiter = client.application.extensions["refflow.limiter"]
    _, key = make_practice()
    addr = f"192.0.2.{uuid.uuid4().int % 250}"
    assert _post(client, referral_body, key, addr).status_code == 202
    redis_server.stop()
    redis_server.start()
    assert _post(client, referral_body, key, addr).status_code == 202
    assert limiter._redis_down_until == 0.0  # never counted in memory
    check = redis.Redis.from_url(redis_server.url)
    try:
        assert check.keys(f"refflow-limits:intake-ip:ip:{addr}:*")  # counted in Redis
    finally:
        check.close()


def test_a_count_whose_answer_was_never_read_does_not_confuse_the_next(settings, redis_server):
    """The intake sends its count to Redis and reads the answer later; if a
    request fails in between, the next count on that thread must still read
    its own answer, not the one left on the connection."""
    tuned = settings.with_overrides(intake_rate_limit="3/hour", broker_url=redis_server.url)
    limiter = create_app(tuned, {"TESTING": True}).extensions["refflow.limiter"]
    assert limiter.storage == "redis"
    endpoint, auth = "referrals_api.create_referral", f"Bearer rf_{uuid.uuid4().hex}"
    addr = f"198.51.100.{uuid.uuid4().int % 250}"
    limiter.start_count(endpoint, "POST", addr, auth)  # answer never read: counted once
    assert limiter.count(endpoint, "POST", addr, auth) is None  # second
    assert limiter.start_count(endpoint, "POST", addr, auth)() is None  # third
    wait = limiter.count(endpoint, "POST", addr, auth)  # fourth: over
    assert wait is not None and 0 < wait <= 3600
    assert limiter.storage == "redis" and limiter._redis_down_until == 0.0
