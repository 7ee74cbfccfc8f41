"""Staff and API reads at a large network's volume (issue 20).

Fills a PostgreSQL database of its own (``refflow_scale`` by default, created
and dropped here) with ``--referrals`` referrals across 200 practices — each
with its timeline, three deliveries and their attempts, a plan and three
documents, written by bulk SQL (``generate_series``) in the shapes the
pipeline writes — then measures p50/p95 of every staff and API read through
the app (Flask's test client, signed in as staff or with a practice's API
key): the dashboard unfiltered and with each filter, its 5-second refresh
(``/queue/fragment``), a referral's page, the JSON list's first and a deep
page, ``/api/v1/queue``, ``/api/v1/stats``, ``/metrics``, and the portal list
of a practice with 5,000 referrals. Then, through ``refflow web`` (gunicorn,
as browsers reach it) with ``refflow worker`` and ``refflow scheduler``
running on the same database (a Redis of their own, a local SMTP server):
six signed-in tabs refreshing the queue at once (their timers lined up); and POST →
``completed`` at one referral a second, without dashboards and with six tabs
whose 5-second refreshes fire together, and those refreshes' times
(``--pipeline-seconds``; 0 leaves that part out).

Prints one JSON object; the targets are p95 <= 200 ms for every read. The
baseline, measured in the same run through the same test client, is
``GET /healthz`` (no database): what a read costs before any query.
Usage: python bench/scale.py [--referrals 1000000] [--repeat 30] [--pipeline-seconds 30]
                             [--keep]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from refflow.config import load_settings
from refflow.db import database_for, migrate

SERVER = os.environ.get("REFFLOW_BENCH_SERVER", "postgresql+psycopg://postgres@127.0.0.1:5432")
PASSWORD = "bench-password-1234"
TARGET_P95_S = 0.2
PRACTICES = 200
BIG_PRACTICE_REFERRALS = 5000  # practice 0: the portal list of a large practice
IN_FLIGHT = 300  # the newest referrals are still moving through the pipeline
GIVEN = ["Maria", "James", "Ann", "Robert", "Linda", "Michael", "Patricia", "David", "Susan",
         "Jose", "Karen", "Daniel", "Nancy", "Paul", "Lisa", "Mark", "Betty", "Steven"]
FAMILY = ["Gonzalez", "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller",
          "Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson",
          "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson",
          "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker"]


def pct(values, q):
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 4) if values else None


def _array(words) -> str:
    return "(ARRAY[" + ", ".join(f"'{w}'" for w in words) + "])"


# Row shapes: what intake, planning and delivery write (columns, JSON keys, states).
# $N is the number of referrals; i runs 1..N, newest last.
FILL = [
    ("practices", """
INSERT INTO practices (id, name, fax, email, created_at)
SELECT 'p' || lpad(p::text, 35, '0'), 'Practice ' || p, '+1 763 555 0198',
       'office' || p || '@example.org', now() - interval '4 years'
FROM generate_series(0, :practices - 1) p"""),
    ("referrals", """
INSERT INTO referrals (id, practice_id, status, external_id, urgency, payload, payload_sha256,
                       received_on, intake_problems, flagged, request_id, created_at,
                       updated_at, released_at, referrer_notified_at, review_started_at)
SELECT md5('r' || i)::uuid::text,
       'p' || lpad((CASE WHEN i % (:n / :big) = 0 THEN 0
                         ELSE 1 + i % (:practices - 1) END)::text, 35, '0'),
       st, 'EHR-' || i, CASE WHEN i % 10 = 0 THEN 'urgent' ELSE 'routine' END,
       jsonb_build_object(
         'external_id', 'EHR-' || i,
         'patient', jsonb_build_object(
            'given_name', (GIVEN)[1 + i % GIVEN_N], 'family_name', (FAMILY)[1 + (i / 7) % FAMILY_N],
            'birth_date', (date '1930-01-01' + (i * 37) % 25000)::text, 'sex', 'female',
            'email', 'patient' || i || '@example.org'),
         'referrer', jsonb_build_object('name', 'Dr. R. Patel', 'npi', '1234567893',
                                        'fax', '+1 763 555 0198'),
         'diagnosis', jsonb_build_object('codes', jsonb_build_array('M85.80'),
                                         'text', 'osteopenia'),
         'clinical', jsonb_build_object('t_score', -1.8, 'falls_last_12_months', 0,
                                        'mobility_aid', 'none'),
         'goals', jsonb_build_array('walk to the store')),
       md5('payload' || i) || md5('payload2' || i), (at)::date, '[]'::jsonb,
       st = 'needs_review', 'req-' || i, at, at + interval '3 minutes',
       -- the figures the pipeline keeps: released (or held) at +2 min, when the
       -- timeline below (simpler than the pipeline's: no 'planned' entry) reaches
       -- its status; a completed one's fax sent at +3 min. No referral here was
       -- held and then released, so review_seconds stays empty.
       CASE WHEN st IN ('planned', 'delivering', 'completed', 'failed')
            THEN at + interval '2 minutes' END,
       CASE WHEN st = 'completed' THEN at + interval '3 minutes' END,
       CASE WHEN st = 'needs_review' THEN at + interval '2 minutes' END
FROM (SELECT i, now() - (:n - i) * (interval '3 years' / :n) AS at,
             CASE WHEN i > :n - :in_flight THEN
                    (ARRAY['received', 'planning', 'planned', 'delivering', 'needs_review'])
                    [1 + i % 5]
                  WHEN i % 2000 = 7 THEN 'failed'
                  WHEN i % 5000 = 11 THEN 'needs_review'
                  WHEN i % 50 = 3 THEN 'rejected'
                  WHEN i % 100 = 5 THEN 'cancelled'
                  ELSE 'completed' END AS st
      FROM generate_series(1, :n) i) s"""),
    ("referral_events", """
INSERT INTO referral_events (referral_id, at, actor, kind, from_status, to_status, reason)
SELECT r.id, r.created_at + (k * interval '1 minute'), CASE k WHEN 0 THEN 'practice:' ||
       r.practice_id ELSE 'worker' END, 'status',
       (ARRAY[NULL, 'received', 'planning'])[k + 1],
       (ARRAY['received', 'planning', r.status])[k + 1], NULL
FROM referrals r CROSS JOIN generate_series(0, 2) k
WHERE k = 0 OR r.status NOT IN ('received')"""),
    ("plans", """
INSERT INTO plans (id, referral_id, decision, engine_version, body, created_at)
SELECT md5('plan' || id)::uuid::text, id,
       CASE status WHEN 'needs_review' THEN 'review' ELSE 'release' END, '1.0',
       CAST(:plan AS jsonb),
       created_at + interval '1 minute'
FROM referrals WHERE status NOT IN ('received', 'planning')"""),
    ("documents", """
INSERT INTO documents (id, referral_id, name, content_type, sha256, size, pages, content,
                       created_at)
SELECT md5(d.name || r.id)::uuid::text, r.id, d.name, d.ct,
       encode(sha256(convert_to(repeat('x', 600), 'UTF8')), 'hex'),  -- checked as they are read
       600, d.pages, convert_to(repeat('x', 600), 'UTF8'), r.created_at + interval '2 minutes'
FROM referrals r CROSS JOIN (VALUES ('handout.pdf', 'application/pdf', 2),
                                    ('summary.pdf', 'application/pdf', 1),
                                    ('fax.tiff', 'image/tiff', 3)) d(name, ct, pages)
WHERE r.status IN ('planned', 'delivering', 'completed', 'failed', 'needs_review')"""),
    ("deliveries", """
INSERT INTO deliveries (id, referral_id, referral_created_at, channel, document, target,
                        status, attempts, max_attempts, last_error, reference, sent_at,
                        created_at, updated_at)
SELECT md5(c.channel || r.id)::uuid::text, r.id, r.created_at, c.channel, c.document, c.target,
       s.st,
       CASE s.st WHEN 'failed' THEN 5 WHEN 'pending' THEN 0 ELSE 1 END, 5,
       CASE s.st WHEN 'failed' THEN 'fax: no answer (busy)' END,
       CASE s.st WHEN 'sent' THEN 'ref-' || left(r.id, 8) END,
       CASE s.st WHEN 'sent' THEN r.created_at + interval '3 minutes' END,
       r.created_at + interval '2 minutes', r.updated_at
FROM referrals r
CROSS JOIN (VALUES ('fax', 'fax.tiff', '+1 763 555 0198'),
                   ('email', 'handout.pdf', 'patient@example.org'),
                   ('pdf', 'summary.pdf', '')) c(channel, document, target)
CROSS JOIN LATERAL (SELECT CASE
    WHEN r.status = 'failed' AND c.channel = 'fax' THEN 'failed'
    WHEN r.status = 'delivering' THEN 'pending'
    ELSE 'sent' END AS st) s
WHERE r.status IN ('delivering', 'completed', 'failed')"""),
    ("delivery_attempts", """
INSERT INTO delivery_attempts (delivery_id, number, started_at, finished_at, outcome, error)
SELECT d.id, 1, d.created_at, d.created_at + interval '5 seconds',
       CASE d.status WHEN 'failed' THEN 'permanent' ELSE 'sent' END, d.last_error
FROM deliveries d WHERE d.status IN ('sent', 'failed')"""),
]


def engine_plan(settings) -> str:
    """A plan as the engine builds it for a routine referral (every referral's plan)."""
    import datetime as dt

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "pipeline"))
    from sample_referrals import routine

    from refflow.intake.schemas import Referral as ReferralIn
    from refflow.plugins.manager import get_plugin_manager, plan_for

    referral = ReferralIn.model_validate(routine())
    return json.dumps(plan_for(referral, as_of=dt.date.today(),
                               pm=get_plugin_manager(settings)))


def fill(engine, n: int, plan: str) -> dict:
    """Bulk-write ``n`` referrals; seconds per table."""
    seconds = {}
    params = {"n": n, "practices": PRACTICES, "big": BIG_PRACTICE_REFERRALS,
              "in_flight": IN_FLIGHT, "plan": plan}
    for table, sql in FILL:
        sql = (sql.replace("(GIVEN)", _array(GIVEN)).replace("(FAMILY)", _array(FAMILY))
               .replace("GIVEN_N", str(len(GIVEN))).replace("FAMILY_N", str(len(FAMILY))))
        started = time.monotonic()
        with engine.begin() as conn:
            conn.execute(text(sql), params)
        seconds[table] = round(time.monotonic() - started, 1)
    started = time.monotonic()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    seconds["vacuum_analyze"] = round(time.monotonic() - started, 1)
    return seconds


def _token(page: str) -> str:
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)


def sign_in(app, email: str):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    answer = client.post("/login", data={"email": email, "password": PASSWORD,
                                         "csrf_token": _token(page)})
    assert answer.status_code == 302, answer.status_code
    return client


def measure(get, repeat: int, pause: float = 0.0) -> dict:
    """p50/p95 of ``repeat`` requests, ``pause`` seconds apart."""
    get()  # warm: the first request builds caches and prepared statements
    times = []
    for _ in range(repeat):
        time.sleep(pause)
        started = time.perf_counter()
        answer = get()
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200, (answer.status_code, answer.get_data()[:300])
    return {"p50_s": pct(times, 0.5), "p95_s": pct(times, 0.95), "n": len(times)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--referrals", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--pipeline-seconds", type=int, default=30,
                        help="referrals at one a second, without and then with six tabs")
    parser.add_argument("--database", default="refflow_scale")
    parser.add_argument("--keep", action="store_true", help="keep a filled database (and reuse "
                        "it if it exists: no fill)")
    args = parser.parse_args()

    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"),
                              {"d": args.database}).scalar()
        if exists and not args.keep:
            conn.execute(text(f'DROP DATABASE "{args.database}"'))
        if not exists or not args.keep:
            conn.execute(text(f'CREATE DATABASE "{args.database}"'))
    url = f"{SERVER}/{args.database}"
    tmp = Path(tempfile.mkdtemp(prefix="refflow-scale-"))
    settings = load_settings({"REFFLOW_SECRET_KEY": "bench"}, database_url=url,
                             data_dir=tmp / "data")
    db = database_for(settings)
    result: dict = {"referrals": args.referrals, "practices": PRACTICES, "repeat": args.repeat,
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform()}}
    try:
        with db.engine.connect() as conn:
            filled = conn.execute(text("SELECT to_regclass('referrals') IS NOT NULL")).scalar() \
                and conn.execute(text("SELECT count(*) FROM delivery_attempts")).scalar()
        migrate.upgrade(db)
        if not filled:
            started = time.monotonic()
            filler = create_engine(url)  # no statement timeout, unlike the app's engine
            result["fill_seconds"] = fill(filler, args.referrals, engine_plan(settings))
            filler.dispose()
            result["fill_seconds"]["total"] = round(time.monotonic() - started, 1)
        result.update(measure_reads(settings, db, args.repeat))
        result["served"] = measure_served(url, tmp, db, args.pipeline_seconds, args.repeat)
    finally:
        db.dispose()
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{args.database}" WITH (FORCE)'))
    reads = {**result["reads"], **{k: v for k, v in result["served"].items()
                                   if k.startswith("dashboard")}}
    slow = {k: v["p95_s"] for k, v in reads.items() if v["p95_s"] > TARGET_P95_S}
    result["targets"] = {"every_p95_le_0.2s": not slow, "over_target": slow}
    print(json.dumps(result, indent=2))


def measure_reads(settings, db, repeat: int) -> dict:
    from refflow.accounts.practices import issue_key
    from refflow.accounts.users import create_user
    from refflow.app import create_app
    from refflow.db.models import Practice, Referral
    from refflow.web.staff import QUEUE_SHARED_SECONDS

    tag = os.urandom(3).hex()
    with db.session() as session:
        create_user(session, f"staff-{tag}@clinic.example", PASSWORD, role="staff")
        big = session.get(Practice, "p" + "0" * 35)
        create_user(session, f"office-{tag}@practice.example", PASSWORD, role="practice",
                    practice=big.name)
        _, key = issue_key(session, big)
        some = session.scalar(text("SELECT id FROM referrals WHERE status = 'completed' "
                                   "ORDER BY created_at DESC OFFSET 5000 LIMIT 1"))
        assert session.get(Referral, some) is not None
    app = create_app(settings.with_overrides(login_rate_limit="1000/minute"))
    gc.freeze()  # as each web worker does once it has loaded the app (refflow.web.server)
    staff = sign_in(app, f"staff-{tag}@clinic.example")
    office = sign_in(app, f"office-{tag}@practice.example")
    csrf = _token(staff.get("/").get_data(as_text=True))

    def dashboard(**filters):
        def get():
            return staff.get("/")
        staff.post("/queue/filters", data={"csrf_token": csrf, **filters})
        return measure(get, repeat)

    reads = {}
    baseline = measure(lambda: app.test_client().get("/healthz"), repeat)
    reads["dashboard"] = dashboard()
    reads["dashboard_search_name"] = dashboard(q="gonzalez maria")
    reads["dashboard_search_reference"] = dashboard(q="EHR-123457")
    reads["dashboard_failed_delivery"] = dashboard(failed="1")
    reads["dashboard_flagged"] = dashboard(flagged="1")
    reads["dashboard_state_completed"] = dashboard(status="completed")
    reads["dashboard_practice"] = dashboard(practice_id="p" + "0" * 34 + "7")
    reads["dashboard_dates"] = dashboard(date_from="2025-01-01", date_to="2025-01-31")
    staff.post("/queue/filters", data={"csrf_token": csrf, "clear": "1"})
    # one tab: each refresh reads the queue (refreshes within QUEUE_SHARED_SECONDS
    # of each other share a reading, as six tabs' do below)
    reads["dashboard_refresh"] = measure(lambda: staff.get("/queue/fragment"), repeat,
                                         pause=QUEUE_SHARED_SECONDS)
    reads["referral_page"] = measure(lambda: staff.get(f"/referrals/{some}"), repeat)
    reads["api_list_first_page"] = measure(lambda: staff.get("/api/v1/referrals?limit=50"),
                                           repeat)
    deep = staff.get("/api/v1/referrals?limit=200").get_json()
    for _ in range(24):  # 5,000 referrals in
        deep = staff.get(deep["links"]["next"]).get_json()
    reads["api_list_deep_page"] = measure(lambda: staff.get(deep["links"]["next"]), repeat)
    reads["api_list_state_failed"] = measure(
        lambda: staff.get("/api/v1/referrals?status=failed&limit=50"), repeat)
    reads["api_queue"] = measure(lambda: staff.get("/api/v1/queue"), repeat)
    reads["api_stats"] = measure(lambda: staff.get("/api/v1/stats"), repeat)
    reads["metrics"] = measure(lambda: app.test_client().get("/metrics"), repeat)
    practice_api = app.test_client()
    reads["practice_api_list"] = measure(lambda: practice_api.get(
        "/api/v1/referrals?limit=50", headers={"Authorization": f"Bearer {key}"}), repeat)
    reads["portal_list_5000"] = measure(lambda: office.get("/portal/"), repeat)
    return {"baseline_healthz": baseline, "reads": reads}


def web_tab(base: str, email: str):
    """A browser tab signed in to ``refflow web`` at ``base`` (its own
    connection and cookie)."""
    import requests

    tab = requests.Session()
    page = tab.get(f"{base}/login", timeout=30).text
    answer = tab.post(f"{base}/login", data={"email": email, "password": PASSWORD,
                                              "csrf_token": _token(page)},
                      allow_redirects=False, timeout=30)
    assert answer.status_code == 302, answer.status_code
    return tab


def six_tabs(tabs, base: str, repeat: int) -> dict:
    """Six tabs whose refresh timers line up: every tick all six refresh at
    once. Ticks are further apart than refreshes share a reading
    (``QUEUE_SHARED_SECONDS``), so each tick reads the queue afresh, as each
    5-second tick of six real tabs does."""
    from refflow.web.staff import QUEUE_SHARED_SECONDS

    times: list[float] = []
    lock = threading.Lock()
    for session in tabs:  # warm: each worker's first request builds its caches
        session.get(f"{base}/queue/fragment", timeout=30)
    first = time.monotonic() + 1.0
    ticks = [first + k * (QUEUE_SHARED_SECONDS + 0.5) for k in range(max(3, repeat // 3))]

    def tab(session):
        for tick in ticks:
            time.sleep(max(0.0, tick - time.monotonic()))
            started = time.perf_counter()
            answer = session.get(f"{base}/queue/fragment", timeout=30)
            elapsed = time.perf_counter() - started
            assert answer.status_code == 200
            with lock:
                times.append(elapsed)

    threads = [threading.Thread(target=tab, args=(t,)) for t in tabs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"p50_s": pct(times, 0.5), "p95_s": pct(times, 0.95), "n": len(times)}


def measure_served(url: str, tmp: Path, db, seconds: int, repeat: int) -> dict:
    """Through ``refflow web`` (gunicorn, its default 2 workers x 4 threads),
    as browser tabs reach it, with ``refflow worker`` and ``refflow scheduler``
    on this database: six tabs refreshing the queue at once (``repeat // 3`` times); then (with
    ``seconds``) POST -> completed at one referral a second, first with no
    dashboard open, then with six tabs refreshing every 5 seconds, their timers
    lined up."""
    import requests
    from aiosmtpd.controller import Controller

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "pipeline"))
    from sample_referrals import routine

    from refflow import embedded
    from refflow.accounts.practices import issue_key
    from refflow.accounts.users import create_user
    from refflow.db.models import Practice, Referral

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    redis_proc, broker = embedded.start_redis(tmp / "redis")
    smtp_port = embedded.free_port()
    smtp = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    port = embedded.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("REFFLOW_")},
           "REFFLOW_DATA_DIR": str(tmp / "data"), "REFFLOW_DATABASE_URL": url,
           "REFFLOW_BROKER_URL": broker, "REFFLOW_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
           "REFFLOW_SECRET_KEY": "bench", "REFFLOW_INTAKE_RATE_LIMIT": "1000000/minute",
           "REFFLOW_LOGIN_RATE_LIMIT": "1000/minute", "REFFLOW_PUBLIC_URL": base}
    logs = open(tmp / "services.log", "wb")
    procs = [subprocess.Popen([sys.executable, "-m", "refflow", *argv], env=env, stdout=logs,
                              stderr=subprocess.STDOUT, start_new_session=True)
             for argv in (["worker", "--loglevel", "WARNING"], ["scheduler"],
                          ["web", "--host", "127.0.0.1", "--port", str(port)])]
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # still starting
                pass
            assert time.monotonic() < deadline, "refflow web did not start"
            time.sleep(0.2)
        tag = os.urandom(3).hex()
        with db.session() as session:
            create_user(session, f"tabs-{tag}@clinic.example", PASSWORD, role="staff")
            _, key = issue_key(session, session.get(Practice, "p" + "0" * 34 + "7"))
        tabs = [web_tab(base, f"tabs-{tag}@clinic.example") for _ in range(6)]
        result = {"dashboard_refresh_six_tabs": six_tabs(tabs, base, repeat)}
        if not seconds:
            return result
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {key}"

        def post() -> str:
            # an external_id of its own: the same one again is held as a possible duplicate
            answer = api.post(f"{base}/api/v1/referrals", timeout=30,
                              json=routine(external_id=f"BENCH-{os.urandom(6).hex()}"))
            assert answer.status_code == 202, answer.text
            return answer.json()["id"]

        def done(rid: str) -> bool:
            with db.session() as session:
                return session.get(Referral, rid).status in ("completed", "failed")

        def open_work() -> int:
            with db.engine.connect() as conn:
                return conn.execute(text(
                    "SELECT count(*) FROM referrals WHERE status IN "
                    "('received', 'planning', 'planned', 'delivering')")).scalar()

        # warm up (catalogue, fonts) and let the worker finish what the fill left in
        # flight, so the measured referrals wait behind nothing but each other
        for rid in [post() for _ in range(4)]:
            while not done(rid):
                time.sleep(0.05)
        last, still_since, deadline = None, time.monotonic(), time.monotonic() + 300
        while time.monotonic() < deadline and time.monotonic() - still_since < 10:
            now = open_work()
            if now != last:
                last, still_since = now, time.monotonic()
            time.sleep(0.5)

        def latency_run() -> list[float]:
            latencies = []
            for _ in range(seconds):
                started = time.monotonic()
                rid = post()
                posted = time.monotonic()
                while not done(rid):
                    time.sleep(0.01)
                latencies.append(time.monotonic() - posted)
                time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
            return latencies

        result["worker_left_in_flight_after_warm_up"] = last
        alone = latency_run()
        refreshes: list[float] = []
        stop = threading.Event()
        first_tick = time.monotonic() + 1.0

        def tab(session):
            tick = first_tick
            while not stop.is_set():
                stop.wait(max(0.0, tick - time.monotonic()))
                if stop.is_set():
                    break
                started = time.perf_counter()
                answer = session.get(f"{base}/queue/fragment", timeout=30)
                refreshes.append(time.perf_counter() - started)
                assert answer.status_code == 200
                tick += 5.0

        threads = [threading.Thread(target=tab, args=(t,)) for t in tabs]
        for t in threads:
            t.start()
        with_tabs = latency_run()
        stop.set()
        for t in threads:
            t.join()
        for name, values in (("post_to_completed_no_tabs", alone),
                             ("post_to_completed_six_tabs", with_tabs),
                             ("dashboard_refresh_six_tabs_5s_timers", refreshes)):
            result[name] = {"p50_s": pct(values, 0.5), "p95_s": pct(values, 0.95),
                            "max_s": round(max(values), 4), "n": len(values)}
        return result
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        smtp.stop()
        redis_proc.terminate()
        logs.close()


if __name__ == "__main__":
    sys.exit(main())
