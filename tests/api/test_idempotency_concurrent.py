"""Concurrent POSTs with one Idempotency-Key against a real served app: never
two referrals; a request whose first is still in flight gets 409 (DESIGN.md,
the IETF Idempotency-Key draft), one after it the first's answer."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import func, select

from refflow.db.models import IdempotencyKey, OutboxMessage, Referral


def test_twenty_concurrent_posts_make_exactly_one_referral(live_server, auth, referral_body, db):
    start = threading.Barrier(20)

    def submit(_):
        with requests.Session() as http:
            start.wait()
            r = http.post(f"{live_server}/api/v1/referrals", json=referral_body,
                          headers={**auth, "Idempotency-Key": "ehr-batch-77"}, timeout=60)
            return r.status_code, r.json()

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(submit, range(20)))

    # each answer is the one referral, or "the first is still in flight"
    accepted = [body for status, body in answers if status == 202]
    in_flight = [body for status, body in answers if status == 409]
    assert len(accepted) + len(in_flight) == 20 and accepted, answers
    assert {b["error"]["code"] for b in in_flight} <= {"idempotency_key_in_flight"}
    ids = {body["id"] for body in accepted}
    assert len(ids) == 1
    # once the first has committed, the same request gets its answer
    again = requests.post(f"{live_server}/api/v1/referrals", json=referral_body,
                          headers={**auth, "Idempotency-Key": "ehr-batch-77"}, timeout=60)
    assert (again.status_code, again.json()["id"]) == (202, ids.pop())
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 1
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1


def test_a_request_whose_first_is_in_flight_gets_409_then_the_key_works(
        client, auth, referral_body, db, practice, settings):
    """While a request holds its Idempotency-Key (its transaction is open), the
    same key gets 409 at once instead of waiting; had the first failed, the
    key is free again and a retry creates the referral."""
    import pytest
    from sqlalchemy import text

    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time: a second request starts after the first")
    practice_id, _key = practice
    headers = {**auth, "Idempotency-Key": "ehr-slow-1"}
    with db.engine.connect() as first:  # the first request, still in its transaction
        first.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                      {"k": f"{practice_id}:ehr-slow-1"})
        r = client.post("/api/v1/referrals", json=referral_body, headers=headers)
        assert r.status_code == 409, r.get_json()
        assert r.get_json()["error"]["code"] == "idempotency_key_in_flight"
        first.rollback()  # it failed: nothing was stored under the key
    r = client.post("/api/v1/referrals", json=referral_body, headers=headers)
    assert r.status_code == 202
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 1
