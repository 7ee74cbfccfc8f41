"""GET /api/v1/stats: the Reports numbers of the referrals received in a period,
built through the real pipeline (intake, plan, review, delivery) with the
times of their timeline then set to known values, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from sample_referrals import flagged, routine
from sqlalchemy import select, update
from web_forms import sign_in

from refflow.accounts.users import create_user
from refflow.db.models import AuditEntry, Delivery, Referral, ReferralEvent
from refflow.pipeline import flow, staff_actions
from refflow.pipeline.context import Pipeline

UTC = dt.timezone.utc
PASSWORD = "correct horse battery staple"
PERIOD = {"from": "2026-03-01", "to": "2026-03-10"}  # America/Chicago, DST from 03-08


def _at(day: int, hour: float, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, tzinfo=UTC) + dt.timedelta(hours=hour)


def _submit(client, key, body) -> str:
    r = client.post("/api/v1/referrals", json=body, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 202, r.get_json()
    return r.get_json()["id"]


def _deliver_all(p, db, rid) -> None:
    with db.session() as session:
        ids = session.scalars(select(Delivery.id).where(Delivery.referral_id == rid)).all()
    for delivery_id in ids:
        flow.deliver(p, delivery_id)


def _place(db, rid, received: dt.datetime, status_hours: dict[str, float],
           sent_hours: dict[str, float]) -> None:
    """Set the referral's times: received at ``received``, each status reached
    ``status_hours[status]`` later, each delivery of a document sent
    ``sent_hours[document]`` later; and the figures it keeps as it moves
    (tests/pipeline/test_referral_figures.py checks the pipeline keeps them)
    to match: first released, referrer first told, time in review."""
    def later(hours):
        return None if hours is None else received + dt.timedelta(hours=hours)

    review = status_hours.get("needs_review")
    review_end = min((h for h in status_hours.values() if review is not None and h > review),
                     default=None)
    told = min((h for d, h in sent_hours.items() if d in ("fax.tiff", "decline.tiff")),
               default=None)
    with db.session() as session:
        session.execute(update(Referral).where(Referral.id == rid).values(
            created_at=received, released_at=later(status_hours.get("planned")),
            referrer_notified_at=later(told), review_started_at=later(review),
            review_seconds=None if review_end is None else (review_end - review) * 3600))
        session.execute(update(Delivery).where(Delivery.referral_id == rid)
                        .values(referral_created_at=received))
        session.execute(update(ReferralEvent).where(ReferralEvent.referral_id == rid)
                        .values(at=received))
        for status, hours in status_hours.items():
            session.execute(update(ReferralEvent).where(
                ReferralEvent.referral_id == rid, ReferralEvent.kind == "status",
                ReferralEvent.to_status == status).values(at=received + dt.timedelta(hours=hours)))
        for document, hours in sent_hours.items():
            done = session.execute(update(Delivery).where(
                Delivery.referral_id == rid, Delivery.document == document, Delivery.status == "sent")
                .values(sent_at=received + dt.timedelta(hours=hours)))
            assert done.rowcount == 1, document


@pytest.fixture
def staff(client, db):
    """``client`` signed in as clinic staff."""
    with db.session() as session:
        create_user(session, "manager@clinic.example", PASSWORD, role="staff")
    assert sign_in(client, "manager@clinic.example").status_code == 302
    return client


@pytest.fixture
def network(staff, settings, db, make_practice):
    """Five referrals of North in the period, one of Lakeside in the period before.

    ============  ==========================  ========  ============  =======
    referral      path                        released  referrer told held
    ============  ==========================  ========  ============  =======
    A (03-03)     released, completed          1 h       2 h
    B (03-04)     released, completed          3 h       5 h
    C (03-05)     held, approved, completed    4.5 h     6 h           4 h
    D (03-06)     held, rejected, letter sent            10 h          8 h
    E (03-10 23:30 local) held, still held                             (open)
    F Lakeside (02-25) released, completed
    ============  ==========================  ========  ============  =======
    """
    p = Pipeline(settings, db=db)
    north, north_key = make_practice("North Family Medicine")
    lake, lake_key = make_practice("Lakeside Clinic")
    ids = {}
    for name, key, body in (("A", north_key, routine()), ("B", north_key, routine()),
                            ("C", north_key, flagged()), ("D", north_key, flagged()),
                            ("E", north_key, flagged()), ("F", lake_key, routine())):
        body["external_id"] = f"EHR-{name}"  # no "possible duplicate" hold
        ids[name] = rid = _submit(staff, key, body)
        flow.build_plan(p, rid)
    staff_actions.approve(p, ids["C"], actor="user:physio")
    flow.render_documents(p, ids["C"])
    staff_actions.reject(p, ids["D"], actor="user:physio", note="See the surgeon first.")
    for name in "ABCDF":
        _deliver_all(p, db, ids[name])
    # the patient's email and the chart come first: they are not the referrer's
    others = {"handout.pdf": 0.1, "chart.pdf": 0.1}
    _place(db, ids["A"], _at(3, 15), {"planning": 0.1, "planned": 1, "delivering": 1.2,
                                      "completed": 2}, {"fax.tiff": 2, **others})
    _place(db, ids["B"], _at(4, 15), {"planning": 0.1, "planned": 3, "delivering": 3.2,
                                      "completed": 5}, {"fax.tiff": 5, **others})
    _place(db, ids["C"], _at(5, 15), {"planning": 0.1, "needs_review": 0.5, "planned": 4.5,
                                      "delivering": 5, "completed": 6}, {"fax.tiff": 6, **others})
    _place(db, ids["D"], _at(6, 15), {"planning": 0.1, "needs_review": 1, "rejected": 9},
           {"decline.tiff": 10})
    _place(db, ids["E"], _at(11, 4.5), {"planning": 0.1, "needs_review": 0.2}, {})
    _place(db, ids["F"], _at(25, 15, month=2), {"planned": 1}, {"fax.tiff": 2, **others})
    return {"north": north, "lake": lake}


def test_counts_times_deliveries_and_practices_of_the_period(client, network, db):
    r = client.get("/api/v1/stats", query_string=PERIOD)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["period"] == {"from": "2026-03-01", "to": "2026-03-10", "days": 10,
                              "timezone": "America/Chicago",
                              "start": "2026-03-01T00:00:00-06:00",
                              "end": "2026-03-11T00:00:00-05:00"}
    assert (body["previous_period"]["from"], body["previous_period"]["to"]) == (
        "2026-02-19", "2026-02-28")
    assert body["practice"] is None
    assert body["counts"] == {"received": 5, "released": 3, "held": 3, "rejected": 1,
                              "completed": 3, "failed": 0, "cancelled": 0, "in_progress": 1}
    # median and 90th percentile interpolated between the values (percentile_cont)
    assert body["times"] == {
        "receipt_to_release": {"count": 3, "median_hours": 3.0, "p90_hours": 4.2},
        "receipt_to_referrer_notified": {"count": 4, "median_hours": 5.5, "p90_hours": 8.8},
        "held_in_review": {"count": 2, "median_hours": 6.0, "p90_hours": 7.6, "still_held": 1},
    }
    assert body["deliveries"] == [
        {"channel": "email", "status": "sent", "count": 3},
        {"channel": "fax", "status": "sent", "count": 4},
        {"channel": "pdf", "status": "sent", "count": 3},
    ]
    assert body["top_practices"] == [
        {"id": network["north"], "name": "North Family Medicine", "referrals": 5}]
    assert body["practices_falling_off"] == [
        {"id": network["lake"], "name": "Lakeside Clinic", "referrals": 0,
         "previous_referrals": 1, "stopped": True}]
    with db.session() as session:
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "stats.read")).one()
    assert audit.detail == "2026-03-01..2026-03-10" and audit.actor.startswith("user:")


def test_one_practice_and_the_referral_after_the_last_local_day(client, network):
    lake = client.get("/api/v1/stats", query_string={**PERIOD, "practice": network["lake"]})
    body = lake.get_json()
    assert body["practice"] == {"id": network["lake"], "name": "Lakeside Clinic"}
    assert body["counts"]["received"] == 0 and body["top_practices"] == []
    assert [p["name"] for p in body["practices_falling_off"]] == ["Lakeside Clinic"]
    # E came in at 23:30 on 03-10 clinic time: in a period ending 03-10, not one ending 03-09
    earlier = client.get("/api/v1/stats", query_string={"from": "2026-03-01", "to": "2026-03-09"})
    assert earlier.get_json()["counts"]["received"] == 4
    assert earlier.get_json()["times"]["held_in_review"]["still_held"] == 0


def test_csv_one_long_table_a_spreadsheet_opens(client, network):
    for kwargs in ({"query_string": {**PERIOD, "format": "csv"}},
                   {"query_string": PERIOD, "headers": {"Accept": "text/csv"}}):
        r = client.get("/api/v1/stats", **kwargs)
        assert r.status_code == 200
        assert r.mimetype == "text/csv"
        assert r.headers["Content-Disposition"] == (
            'attachment; filename="refflow-stats-2026-03-01-to-2026-03-10.csv"')
        text = r.data.decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == ["section", "item", "measure", "value"]
        table = {(s, i, m): v for s, i, m, v in rows[1:]}
        assert table[("period", "", "from")] == "2026-03-01"
        assert table[("referrals", "received", "count")] == "5"
        assert table[("referrals", "held", "count")] == "3"
        assert table[("times", "receipt_to_referrer_notified", "median_hours")] == "5.5"
        assert table[("times", "held_in_review", "p90_hours")] == "7.6"
        assert table[("deliveries", "fax sent", "count")] == "4"
        assert table[("top_practices", "North Family Medicine", "referrals")] == "5"
        assert table[("practices_falling_off", "Lakeside Clinic", "previous_referrals")] == "1"


def test_default_period_is_the_last_30_days(staff):
    body = staff.get("/api/v1/stats").get_json()
    assert body["period"]["days"] == 30
    last = dt.date.fromisoformat(body["period"]["to"])
    assert abs((last - dt.date.today()).days) <= 1  # the clinic's today
    assert body["counts"]["received"] == 0


@pytest.mark.parametrize(("query", "parameter"), [
    ({"from": "2026-13-01"}, "from"),
    ({"from": "03/01/2026", "to": "2026-03-10"}, "from"),
    ({"to": "2026-03-10T00:00"}, "to"),
    ({"from": "2026-03-10", "to": "2026-03-01"}, "from"),
    ({"from": "2025-01-01", "to": "2026-03-01"}, "to"),
    ({"from": "0001-01-01", "to": "2026-01-02"}, "from"),
    ({"to": "9999-12-31"}, "to"),
    ({"practice": "not-a-practice"}, "practice"),
    ({"practice": "00000000-0000-4000-8000-000000000000"}, "practice"),
    ({"format": "xlsx"}, "format"),
])
def test_bad_query_is_a_422_naming_the_parameter(staff, query, parameter):
    r = staff.get("/api/v1/stats", query_string=query)
    assert r.status_code == 422
    error = r.get_json()["error"]
    assert error["code"] == "validation_failed" and list(error["fields"]) == [parameter]


def test_practice_keys_and_strangers_may_not_read_it(client, auth):
    assert client.get("/api/v1/stats").status_code == 401
    r = client.get("/api/v1/stats", headers=auth)
    assert r.status_code == 403
    assert r.get_json()["error"]["code"] == "forbidden"
