"""20 concurrent POSTs with one Idempotency-Key against a real served app."""

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

    assert {status for status, _ in answers} == {202}, answers
    ids = {body["id"] for _, body in answers}
    assert len(ids) == 1
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 1
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1
