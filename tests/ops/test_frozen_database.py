"""A frozen database (issue 14, "bounded waits everywhere"): PostgreSQL behind
a TCP proxy that stops moving bytes but keeps every socket open, as a hung
server or a silent partition does. Intake must answer 503 with Retry-After
in the JSON envelope within a bounded time (connect, statement and pool
timeouts of 3 s here), leave nothing half-written, and once the database
answers again, the same requests are accepted and complete."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import sample_referrals
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy

from refflow.db.models import OutboxMessage, Referral, ReferralEvent

pytestmark = pytest.mark.faults

BOUND_SECONDS = 10.0  # a correctness bound (the wait ends), not a speed target


def routine(n: int = 0) -> dict:
    return sample_referrals.routine(external_id=f"FROZEN-{n}")


@pytest.fixture
def proxied(stack, pg_url, make_staff_cookie):
    """The web app on the stack's schema, its database reached through a
    freezable proxy, with a practice's key and a staff user's cookie."""
    from refflow.accounts.practices import create_practice, issue_key
    from refflow.app import create_app
    from refflow.db import database_for

    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    settings = stack.settings.with_overrides(
        database_url=url.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False),
        db_connect_timeout_seconds=3, db_statement_timeout_seconds=3.0,
        db_pool_timeout_seconds=3.0, intake_rate_limit="100000/minute")
    app = create_app(settings, {"TESTING": True})
    with stack.db.session() as session:
        practice = create_practice(session, f"Frozen {uuid.uuid4().hex[:6]}",
                                   fax="+1 763 555 0198")
        practice_id = practice.id
        _, key = issue_key(session, practice)
    cookie, _ = make_staff_cookie(app, stack.db)
    yield {"app": app, "proxy": proxy, "practice_id": practice_id,
           "headers": {"Authorization": f"Bearer {key}"}, "cookie": cookie}
    proxy.thaw()
    database_for(settings).dispose()
    proxy.close()


def post(app, headers: dict, n: int, key: str):
    return app.test_client().post("/api/v1/referrals", json=routine(n),
                                  headers={**headers, "Idempotency-Key": key})


def test_frozen_database_answers_503_in_bounded_time_then_everything_completes(stack, proxied):
    app, proxy, headers = proxied["app"], proxied["proxy"], proxied["headers"]
    # Warm the pool through the proxy, so the frozen requests meet pooled
    # connections (the pre-ping path) as well as new ones.
    warm: list = []
    warmers = [threading.Thread(target=lambda i=i: warm.append(
        post(app, headers, 1000 + i, f"warm-{uuid.uuid4().hex}"))) for i in range(4)]
    for t in warmers:
        t.start()
    for t in warmers:
        t.join(30)
    assert [r.status_code for r in warm] == [202] * 4
    accepted = {r.get_json()["id"] for r in warm}

    proxy.freeze()
    results: list[tuple[int, str, float, object]] = []
    lock = threading.Lock()
    keys = {(w, i): f"frozen-{w}-{i}-{uuid.uuid4().hex}" for w in range(6) for i in range(2)}

    def client(worker: int) -> None:
        for i in range(2):  # the second request meets a database already known frozen
            started = time.monotonic()
            r = post(app, headers, worker * 10 + i, keys[(worker, i)])
            with lock:
                results.append(((worker, i), r.status_code, time.monotonic() - started, r))

    threads = [threading.Thread(target=client, args=(w,), daemon=True) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not [t for t in threads if t.is_alive()], "a request never returned"
    # a staff page gets an HTML 503 that says when to retry
    staff = app.test_client()
    staff.set_cookie(app.config["SESSION_COOKIE_NAME"], proxied["cookie"])
    started = time.monotonic()
    page = staff.get("/", headers={"Accept": "text/html"})
    page_elapsed = time.monotonic() - started
    proxy.thaw()

    elapsed = sorted(round(e, 2) for _, _, e, _ in results)
    print(f"\nfrozen: per-request seconds {elapsed}; staff page {page_elapsed:.2f} s")
    assert len(results) == 12
    for _, status, seconds, r in results:
        assert status == 503, (status, r.get_json())
        assert int(r.headers["Retry-After"]) >= 1
        body = r.get_json()
        assert set(body["error"]) == {"code", "message", "fields"}
        assert body["error"]["code"] == "unavailable"
        assert "Mary" not in r.get_data(as_text=True)
        assert seconds < BOUND_SECONDS, elapsed
    assert page.status_code == 503 and page.mimetype == "text/html"
    assert int(page.headers["Retry-After"]) >= 1
    assert page_elapsed < BOUND_SECONDS

    # Thawed: the same requests (same Idempotency-Key) are accepted once the
    # database answers again (within a few probes).
    deadline = time.monotonic() + 30
    first = keys[(0, 0)]
    while True:
        r = post(app, headers, 0, first)
        if r.status_code == 202 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 202, r.get_json()
    accepted.add(r.get_json()["id"])
    for (w, i), key in keys.items():
        r = post(app, headers, w * 10 + i, key)
        assert r.status_code == 202, r.get_json()
        accepted.add(r.get_json()["id"])
    assert len(accepted) == 4 + 12

    # Nothing half-written: exactly the accepted referrals, each with its
    # timeline event and outbox row.
    with stack.db.session() as session:
        rows = set(session.scalars(select(Referral.id).where(
            Referral.practice_id == proxied["practice_id"])).all())
        assert rows == accepted
        for rid in rows:
            assert session.scalar(select(func.count()).select_from(ReferralEvent)
                                  .where(ReferralEvent.referral_id == rid)) >= 1
        outbox = session.scalars(select(OutboxMessage.args)).all()
        assert accepted <= {a.get("referral_id") for a in outbox}
    stack.wait_for(list(accepted), timeout=120)
