"""The dashboard's 5-second refresh (``GET /queue/fragment``), on SQLite and
PostgreSQL: each list's row shows the patient's name, date of birth ("not
given" without one), practice and badges, and links to its referral's page
(also when the site is served under a path prefix); the failed deliveries
name their patient and link to the delivery; the whole dashboard names the
patients of its exercise alerts."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time

import pytest
from sample_referrals import flagged, routine
from sqlalchemy import event, select
from web_forms import PASSWORD, sign_in

from refflow.accounts.users import create_user
from refflow.db.models import AuditEntry, Delivery, Practice, Referral, utcnow
from refflow.pipeline import flow
from refflow.pipeline.context import Pipeline
from refflow.referrals import patient_page, states
from refflow.web.shared_reading import SharedReading
from refflow.web.staff import QUEUE_SHARED_SECONDS

STAFF = "queue@clinic.example"


@pytest.fixture
def staff(client, db):
    with db.session() as session:
        create_user(session, STAFF, PASSWORD, role="staff")
    assert sign_in(client, STAFF).status_code == 302
    return client


@pytest.fixture
def p(settings, db):
    return Pipeline(settings, db=db, publish=lambda task, args: None)


def _submit(client, auth, body: dict, *, family: str, birth: str = "1950-01-01") -> str:
    body["external_id"] = f"EHR-{family}"
    body["patient"] = dict(body["patient"], family_name=family, given_name="Ann",
                           birth_date=birth)
    answer = client.post("/api/v1/referrals", json=body, headers=auth)
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["id"]


def _section(page: str, heading_id: str) -> str:
    start = page.index(f'id="{heading_id}"')
    return page[start:page.index("</section>", start)]


def test_each_row_links_to_its_referral_with_name_birth_date_and_practice(
        client, auth, p, db, staff):
    held = _submit(client, auth, flagged(), family="Heldback", birth="1944-03-05")
    assert flow.build_plan(p, held) == states.NEEDS_REVIEW
    failing = _submit(client, auth, routine(), family="Faxfail", birth="1951-06-07")
    old = _submit(client, auth, routine(), family="Longago", birth="1939-11-12")
    with db.session() as session:
        fax = Delivery(referral_id=failing, channel="fax", document="fax.tiff",
                       target="+1 763 555 0198", status="failed", last_error="no answer")
        session.add(fax)
        session.get(Referral, old).created_at = utcnow() - dt.timedelta(days=40)
        session.get(Referral, held).urgency = "urgent"
        session.flush()
        delivery = fax.id
        practice = session.get(Practice, session.get(Referral, held).practice_id).name

    answer = client.get("/queue/fragment")
    assert answer.status_code == 200
    page = answer.text
    listed = _section(page, "list-h")
    for rid, family, birth in ((held, "Heldback", "1944-03-05"),
                               (failing, "Faxfail", "1951-06-07"),
                               (old, "Longago", "1939-11-12")):
        row = re.search(rf'<tr>\s*<td><a href="/referrals/{rid}">{family}, Ann</a>\s*'
                        rf'<span class="dob">DOB {birth}</span>(.*?)</tr>', listed, re.S)
        assert row, family
        assert f"<td>{practice}</td>" in row.group(1)
        assert f"<td>EHR-{family}</td>" in row.group(1)
        assert ("1 failed" in row.group(1)) == (rid == failing)
        assert ("badge urgent" in row.group(1)) == (rid == held)
    assert re.search(rf'<span class="badge urgent">urgent</span> <a href="/referrals/{held}">'
                     rf'Heldback, Ann</a>\s*<span class="dob">DOB 1944-03-05</span>\s*'
                     rf'<span class="muted">· {re.escape(practice)} · waiting ',
                     _section(page, "review-h"))
    assert (f'<a href="/referrals/{failing}#delivery-{delivery}">Faxfail, Ann</a>'
            in _section(page, "failed-h"))
    overdue = _section(page, "overdue-h")
    assert re.search(rf'<a href="/referrals/{old}#deliveries">Longago, Ann</a>\s*'
                     rf'<span class="dob">DOB 1939-11-12</span>', overdue)
    assert "over 30 days): 1" in overdue

    # under a path prefix (a proxy's SCRIPT_NAME) every link carries it
    prefixed = client.get("/queue/fragment", base_url="http://localhost/clinic").text
    links = re.findall(r'href="([^"]*/referrals/[^"]+)"', prefixed)
    assert len(links) == 6  # three rows, one review, one failure, one overdue
    assert all(link.startswith("/clinic/referrals/") for link in links)
    assert f'href="/clinic/referrals/{failing}#delivery-{delivery}"' in prefixed


def test_a_referral_without_a_date_of_birth_says_so(client, auth, db, staff):
    rid = _submit(client, auth, routine(), family="Nodate")
    with db.session() as session:
        referral = session.get(Referral, rid)
        patient = {k: v for k, v in referral.payload["patient"].items() if k != "birth_date"}
        referral.payload = {**referral.payload, "patient": patient}
    listed = _section(client.get("/queue/fragment").text, "list-h")
    assert re.search(rf'href="/referrals/{rid}">Nodate, Ann</a>\s*'
                     r'<span class="dob">DOB not given</span>', listed)


def test_the_dashboard_names_the_patient_of_an_exercise_alert(client, auth, db, staff):
    rid = _submit(client, auth, routine(), family="Stoppedlogging")
    days_ago = dt.date.today() - dt.timedelta(days=patient_page.STOPPED_DAYS + 5)
    with db.session() as session:
        link, _ = patient_page.make_link(session, rid, days=90)
        patient_page.log_session(session, link, done_on=days_ago, today=days_ago, pain=2)
    alerts = _section(client.get("/").text, "exercise-alerts-h")
    assert "Patients to call about their exercises: 1" in alerts
    assert (f'<a href="/referrals/{rid}#exercise-log">Stoppedlogging, Ann</a>: '
            f"no session logged since {days_ago.isoformat()}") in alerts


def test_six_refreshes_at_once_are_one_reading_each_audited_and_a_change_shows_next(
        app, client, auth, db, staff):
    """Six open dashboards whose 5-second timers fire together read the queue
    once between them; each refresh is still audited as its user's read; and
    what changed shows in the refresh after the moment they shared."""
    _submit(client, auth, routine(), family="Firstcomer")
    tabs = []
    for n in range(6):
        with db.session() as session:
            create_user(session, f"tab{n}@clinic.example", PASSWORD, role="staff")
        tab = app.test_client()
        assert sign_in(tab, f"tab{n}@clinic.example").status_code == 302
        tabs.append(tab)
    readings = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany):
        if "FROM state_counts" in statement:  # the queue's counts: read once a reading
            readings.append(statement)

    ready, pages = threading.Barrier(6), [None] * 6

    def refresh(n):
        ready.wait()
        pages[n] = tabs[n].get("/queue/fragment").get_data(as_text=True)

    try:
        threads = [threading.Thread(target=refresh, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert all("Firstcomer, Ann" in page for page in pages)
    assert len(set(pages)) == 1
    assert len(readings) == 2  # the tiles and the list's total: one reading, not six
    with db.session() as session:
        actors = session.scalars(select(AuditEntry.actor).where(
            AuditEntry.action == "queue.read")).all()
    assert len(actors) == len(set(actors)) == 6  # each tab's read, under its own user
    _submit(client, auth, routine(), family="Latecomer")
    time.sleep(QUEUE_SHARED_SECONDS)
    assert "Latecomer, Ann" in tabs[0].get("/queue/fragment").get_data(as_text=True)


def test_a_slow_reading_and_its_error_go_to_everyone_who_came_while_it_ran():
    """A reading that takes longer than the moment (a database slow to answer)
    is still the one the requests that came while it ran get, error included:
    they do not read again one after another."""
    shared = SharedReading(seconds=0.2)
    calls, ready = [], threading.Barrier(4)

    def slow(outcome):
        def read():
            calls.append(outcome)
            time.sleep(0.5)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        return read

    for outcome in ("the queue", RuntimeError("database gone")):
        calls.clear()
        results = []

        def ask(outcome=outcome):
            ready.wait()
            try:
                results.append(shared.get("view", slow(outcome)))
            except RuntimeError as exc:
                results.append(exc)

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert calls == [outcome] and results == [outcome] * 4
    time.sleep(0.2)  # after the moment, a new request reads again
    assert shared.get("view", lambda: "fresh") == "fresh"
