"""End-to-end pipeline benchmark: POST → completed with all three channels.

Runs, in one go on this machine, against PostgreSQL, a Redis server of its
own, a real SMTP server (aiosmtpd) and `refflow worker` + `refflow scheduler`
subprocesses:

1. latency: one referral a second for ``--latency-seconds``; p50/p95 from the
   POST's answer to `completed` (polled every 10 ms);
2. throughput: ``--burst`` referrals submitted at once; referrals/s until the
   last one is completed;
3. the orchestration floor: round trips of a no-op Celery task on the same
   broker and worker;
4. the work floor: the same work (plan, render, fax spool + email + chart PDF)
   done without Celery or the database, in as many processes as the worker has;
5. worker memory (RSS of the worker's process tree) before and after
   ``--memory-referrals`` more referrals.

Prints one JSON object. Usage: python bench/pipeline.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "pipeline"))

from aiosmtpd.controller import Controller
from sample_referrals import routine
from sqlalchemy import create_engine, select, text

from refflow import embedded
from refflow.commands.worker import default_concurrency
from refflow.config import load_settings
from refflow.db import database_for, migrate
from refflow.db.models import Referral

PG_URL = os.environ.get("REFFLOW_TEST_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WORKER_CONCURRENCY = default_concurrency()  # as `refflow worker` runs by default


class Sink:
    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        return "250 OK"


def pct(values, q):
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 4) if values else None


def rss_tree(pid: int) -> int:
    """Resident memory (KiB) of a process and its descendants."""
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_tree(pid: int) -> float:
    """CPU seconds (user + system) of a process and its living descendants."""
    return sum(_cpu(p) for p in _tree(pid))


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip().startswith("postgres"):
                    total += _cpu(int(entry.name))
            except OSError:
                pass
    return total


def work_once(args):
    """The work of one referral without Celery or a database (the work floor)."""
    settings_env, body, i = args
    from refflow.config import load_settings
    from refflow.documents.clinic import ClinicInfo
    from refflow.documents.render import render_all
    from refflow.intake.schemas import Referral as ReferralIn
    from refflow.plugins.channels.base import Delivery
    from refflow.plugins.manager import channels, get_plugin_manager, plan_for

    settings = load_settings(settings_env)
    pm = get_plugin_manager(settings)
    chans = channels(pm, settings)
    referral = ReferralIn.model_validate(body)
    plan = plan_for(referral, as_of=dt.date.today(), pm=pm)
    docs = render_all(referral, plan, ClinicInfo.from_settings(settings),
                      resolution="fine", paper="letter")
    rid = str(uuid.uuid4())
    for name, doc, target in (("fax", "fax.tiff", referral.referrer.fax),
                              ("email", "handout.pdf", referral.patient.email),
                              ("pdf", "summary.pdf", "")):
        chans[name].send(Delivery(id=str(uuid.uuid4()), referral_id=rid, channel=name,
                                  target=target, documents={doc: docs[doc]},
                                  subject="bench"))
    return i


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-seconds", type=int, default=30)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--memory-referrals", type=int, default=1000)
    parser.add_argument("--pings", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.latency_seconds, args.burst, args.memory_referrals, args.pings = 5, 20, 40, 50

    tmp = Path(tempfile.mkdtemp(prefix="refflow-bench-"))
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    redis_proc, broker = embedded.start_redis(tmp / "redis")
    sink = Sink()
    smtp_port = embedded.free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("REFFLOW_")},
           "REFFLOW_DATA_DIR": str(tmp / "data"), "REFFLOW_DATABASE_URL": PG_URL,
           "REFFLOW_DATABASE_SCHEMA": schema, "REFFLOW_BROKER_URL": broker,
           "REFFLOW_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}", "REFFLOW_SECRET_KEY": "bench",
           "REFFLOW_INTAKE_RATE_LIMIT": "1000000/minute"}  # measure the pipeline, not the limiter
    settings = load_settings(env)
    db = database_for(settings)
    migrate.upgrade(db)
    procs = {}
    logs = open(tmp / "services.log", "wb")
    for name, argv in (("worker", ["worker", "-c", str(WORKER_CONCURRENCY), "--loglevel",
                                   "WARNING"]),
                       ("scheduler", ["scheduler"])):
        procs[name] = subprocess.Popen([sys.executable, "-m", "refflow", *argv], env=env,
                                       stdout=logs, stderr=subprocess.STDOUT,
                                       start_new_session=True)
    result: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform()}}
    try:
        from refflow.accounts.practices import create_practice, issue_key
        from refflow.app import create_app
        from refflow.workers.celery_app import create_celery

        app = create_app(settings)
        client = app.test_client()
        with db.session() as session:
            practice = create_practice(session, "Bench", fax="+1 763 555 0198")
            _, key = issue_key(session, practice)
        auth = {"Authorization": f"Bearer {key}"}

        def post() -> str:
            # each its own reference: the same one again is held as a possible duplicate
            body = routine(external_id=f"BENCH-{uuid.uuid4().hex[:12]}")
            r = client.post("/api/v1/referrals", json=body, headers=auth)
            assert r.status_code == 202, r.get_json()
            return r.get_json()["id"]

        def status_of(ids):
            with db.session() as session:
                return dict(session.execute(select(Referral.id, Referral.status)
                                            .where(Referral.id.in_(ids))).all())

        def wait_all(ids, timeout=600.0):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                found = status_of(ids)
                if all(found.get(i) in ("completed", "failed") for i in ids):
                    return found
                time.sleep(0.05)
            raise SystemExit("timed out waiting for referrals")

        def wait_until_done(ids, timeout=600.0):
            """Like wait_all, for a burst: polls one count (every referral of this
            schema's run is in the burst or already done), so the measuring
            costs the two cores next to nothing; statuses are read once at the end."""
            query = text("SELECT count(*) FROM referrals WHERE status NOT IN "
                         "('completed', 'failed')")
            deadline = time.monotonic() + timeout
            with db.engine.connect() as conn:
                while time.monotonic() < deadline:
                    if conn.execute(query).scalar() == 0:
                        return status_of(ids)
                    conn.rollback()
                    time.sleep(0.05)
            raise SystemExit("timed out waiting for referrals")

        # warm up: the worker's first plan loads the catalogue and fonts
        wait_all([post() for _ in range(4)])

        # 1. latency at one referral a second
        latencies = []
        for _ in range(args.latency_seconds):
            started = time.monotonic()
            rid = post()
            posted = time.monotonic()
            while status_of([rid]).get(rid) not in ("completed", "failed"):
                time.sleep(0.01)
            latencies.append(time.monotonic() - posted)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        result["latency_at_1_per_s"] = {"n": len(latencies), "p50_s": pct(latencies, 0.5),
                                        "p95_s": pct(latencies, 0.95),
                                        "max_s": round(max(latencies), 4)}

        # 2. sustained throughput, with where the CPU went
        cpu0 = {"worker": cpu_tree(procs["worker"].pid),
                "scheduler": cpu_tree(procs["scheduler"].pid),
                "postgres": postgres_cpu(), "redis": cpu_tree(redis_proc.pid),
                "bench_process_intake_and_polling": time.process_time()}
        started = time.monotonic()
        ids = [post() for _ in range(args.burst)]
        final = wait_until_done(ids)
        elapsed = time.monotonic() - started
        cpu1 = {"worker": cpu_tree(procs["worker"].pid),
                "scheduler": cpu_tree(procs["scheduler"].pid),
                "postgres": postgres_cpu(), "redis": cpu_tree(redis_proc.pid),
                "bench_process_intake_and_polling": time.process_time()}
        result["throughput"] = {"referrals": len(ids), "seconds": round(elapsed, 2),
                                "referrals_per_s": round(len(ids) / elapsed, 2),
                                "completed": sum(s == "completed" for s in final.values()),
                                "cpu_ms_per_referral": {
                                    k: round(1000 * (cpu1[k] - cpu0[k]) / len(ids), 1)
                                    for k in cpu0},
                                "cpu_utilisation_of_all_cores": round(
                                    sum(cpu1[k] - cpu0[k] for k in cpu0)
                                    / (elapsed * (os.cpu_count() or 1)), 3)}

        # 3. orchestration floor: no-op task round trips on the same broker and worker
        celery_app = create_celery(settings)
        import redis

        r = redis.Redis.from_url(broker)
        rtts = []
        for _ in range(args.pings):
            reply = f"bench:ping:{uuid.uuid4().hex}"
            t0 = time.monotonic()
            celery_app.send_task("refflow.ping", kwargs={"reply_to": reply},
                                 queue="refflow.planning")
            r.blpop(reply, timeout=10)
            rtts.append(time.monotonic() - t0)
        result["orchestration_floor_noop_task"] = {"n": len(rtts),
                                                   "p50_s": pct(rtts, 0.5),
                                                   "p95_s": pct(rtts, 0.95)}

        # 4. work floor: the same work in-process, as many processes as worker slots
        floor_env = {**env, "REFFLOW_DATA_DIR": str(tmp / "floor")}
        body = routine()
        with multiprocessing.get_context("fork").Pool(WORKER_CONCURRENCY) as pool:
            pool.map(work_once, [(floor_env, body, i) for i in range(WORKER_CONCURRENCY * 2)])
            t0 = time.monotonic()
            pool.map(work_once, [(floor_env, body, i) for i in range(args.burst)])
            floor_elapsed = time.monotonic() - t0
        floor_rps = args.burst / floor_elapsed
        result["work_floor_in_process"] = {"referrals": args.burst, "processes":
                                           WORKER_CONCURRENCY,
                                           "referrals_per_s": round(floor_rps, 2)}
        result["throughput_vs_work_floor"] = round(
            result["throughput"]["referrals_per_s"] / floor_rps, 3)

        # 5. worker memory over many referrals
        before = rss_tree(procs["worker"].pid)
        done = 0
        while done < args.memory_referrals:
            batch = [post() for _ in range(min(100, args.memory_referrals - done))]
            wait_all(batch)
            done += len(batch)
        after = rss_tree(procs["worker"].pid)
        result["worker_memory"] = {"referrals": done, "rss_kib_before": before,
                                   "rss_kib_after": after,
                                   "growth_pct": round(100 * (after - before) / before, 2)}
        result["emails_received"] = sink.count
        result["targets"] = {
            # issue 13: speed from a simple design, not from second paths
            "p95_le_0.5s": result["latency_at_1_per_s"]["p95_s"] <= 0.5,
            "throughput_ge_60pct_of_work_floor": result["throughput_vs_work_floor"] >= 0.6,
            "memory_growth_lt_10pct": result["worker_memory"]["growth_pct"] < 10,
        }
    finally:
        import signal

        for proc in procs.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
            except Exception:  # noqa: BLE001
                os.killpg(proc.pid, signal.SIGKILL)
        controller.stop()
        redis_proc.terminate()
        database_for(settings).dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
