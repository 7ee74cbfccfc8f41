"""Intake load benchmark: sustained POST /api/v1/referrals against gunicorn on
PostgreSQL, side by side with a minimal Flask JSON endpoint served the same
way (the framework ceiling), in the same run. Prints one JSON object.

A third server in the same run measures the work floor: the intake's required
I/O with no application logic (the body decoded, the rate limits counted in
Redis by the same script, the same accepting statement committed on
PostgreSQL), as a bare WSGI app. It tells apart what the framework costs
(ceiling), what storing and counting a referral costs (floor), and what
refflow's own logic adds on top (validation, ids, audit, metrics, ...).

    python bench/intake.py [--seconds 15] [--concurrency 8] [--workers 2] [--threads 4]

The server runs as ``refflow web`` serves by default (refflow.ops.server.serve,
2 gunicorn gthread workers x 4 threads); the JSON states the configuration
used. As in production, a broker URL is set (a Redis server started for the
run with ``refflow.embedded.start_redis``), so the rate limits count in Redis;
``--limits-storage memory`` measures the in-process fallback instead.

Needs PostgreSQL at REFFLOW_TEST_DATABASE_URL (default: the local test
database); a schema is created for the run and dropped afterwards. The load
generator is a closed-loop multi-threaded client on the same machine with
keep-alive connections (one per thread).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import socket
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

PG_URL = os.environ.get("REFFLOW_TEST_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parents[1]
REFERRAL = json.loads((ROOT / "examples" / "referrals" / "design-example.json").read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ceiling_app():
    from flask import Flask, jsonify, request

    app = Flask("ceiling")

    @app.post("/api/v1/referrals")
    def accept():
        data = request.get_json()
        return jsonify({"id": str(uuid.uuid4()), "status": "received",
                        "fields": len(data)}), 202

    return app


def _floor_app():
    """The intake's required I/O and nothing else, as a bare WSGI app: read and
    decode the body, count the request's rate limits (refflow's own counters,
    Redis), run the accepting statement refflow runs for the example referral
    (key check, referral, timeline, audit and outbox rows; its own
    transaction, synchronous commit) with a fresh id, on a connection each
    thread keeps, and answer 202 with the id."""
    import datetime as dt

    import psycopg
    from flask import Flask

    from refflow.config import load_settings
    from refflow.db import database_for
    from refflow.intake.accept import keyed_statement
    from refflow.intake.schemas import Referral
    from refflow.ops import limits

    settings = load_settings()
    db = database_for(settings)
    statement = keyed_statement(db, os.environ["REFFLOW_BENCH_API_KEY"], None,
                                Referral.model_validate(REFERRAL), problems=[],
                                idempotency_key=None, clinic_timezone=settings.clinic_timezone,
                                ip="127.0.0.1", request_id="bench")
    counters = limits.init_app(Flask("floor"), settings)
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    options = f"-csearch_path={settings.database_schema}" if settings.database_schema else ""
    local = threading.local()

    def app(environ, start_response):
        if environ["REQUEST_METHOD"] != "POST":
            start_response("200 OK", [("Content-Length", "0")])
            return [b""]
        json.loads(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        counters.count(limits.INTAKE_ENDPOINT, "POST", environ.get("REMOTE_ADDR"),
                       environ.get("HTTP_AUTHORIZATION", ""))
        cursor = getattr(local, "cursor", None)
        if cursor is None:
            cursor = local.cursor = psycopg.connect(url, autocommit=True,
                                                    options=options).cursor()
        now = dt.datetime.now(dt.timezone.utc)
        rid = str(uuid.uuid4())
        cursor.execute(statement.sql, {**statement.params, "rid": rid, "now": now})
        cursor.fetchone()
        body = json.dumps({"id": rid, "status": "received"}).encode()
        start_response("202 ACCEPTED", [("Content-Type", "application/json"),
                                        ("Content-Length", str(len(body)))])
        return [body]

    return app


def _serve(kind: str, port: int, workers: int, threads: int, settings_env: dict) -> None:
    os.environ.update(settings_env)
    from refflow.config import load_settings
    from refflow.ops.server import serve

    settings = load_settings()
    factory = {"ceiling": _ceiling_app, "floor": _floor_app}.get(kind)
    serve(settings, host="127.0.0.1", port=port, workers=workers, threads=threads,
          app_factory=factory, loglevel="warning")


def wait_ready(port: int, path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat)."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = \
            (int(x) for x in f.readline().split()[1:9])
    busy = user + nice + system + irq + softirq + steal
    return busy / _TICK, (busy + idle + iowait) / _TICK


class CpuMeter:
    """CPU used during the measured window by each part: the server (gunicorn
    master and workers), its PostgreSQL backends (found by application_name),
    the benchmark's Redis, and the load generator (this process)."""

    def __init__(self, server_pid: int, redis_pid: int | None, pg_url: str, app_name: str):
        self.server_pid, self.redis_pid = server_pid, redis_pid
        self.pg_url, self.app_name = pg_url, app_name

    def _pg_pids(self) -> list[int]:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.pg_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text("SELECT pid FROM pg_stat_activity "
                                              "WHERE application_name = :name"),
                                         {"name": self.app_name}).scalars())
        finally:
            engine.dispose()

    def sample(self) -> dict[str, float]:
        busy, total = _machine_cpu()
        return {
            "machine_busy": busy, "machine_total": total,
            "server": sum(_proc_cpu(p) for p in _descendants(self.server_pid)),
            "postgresql": sum(_proc_cpu(p) for p in self._pg_pids()) if self.app_name else 0.0,
            "redis": _proc_cpu(self.redis_pid) if self.redis_pid else 0.0,
            "load_generator": time.process_time(),
        }


def load(port: int, headers: dict, seconds: float, concurrency: int, warmup: float,
         meter: CpuMeter | None = None) -> dict:
    body = json.dumps(REFERRAL).encode()
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    start_at = time.monotonic() + 0.2
    measure_from = start_at + warmup
    stop_at = measure_from + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < start_at:
            time.sleep(0.001)
        while True:
            t0 = time.monotonic()
            if t0 >= stop_at:
                break
            try:
                conn.request("POST", "/api/v1/referrals", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            t1 = time.monotonic()
            if t0 >= measure_from:
                latencies[i].append(t1 - t0)
                if status != 202:
                    errors[i] += 1
                    with lock:
                        statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    samples: list[dict] = []

    def metering() -> None:
        for at in (measure_from, stop_at):
            time.sleep(max(0.0, at - time.monotonic()))
            samples.append(meter.sample())

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    if meter is not None:
        threads.append(threading.Thread(target=metering))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_lat = sorted(x for lane in latencies for x in lane)
    n = len(all_lat)

    def pct(p: float) -> float:
        return round(all_lat[min(n - 1, int(p * n))] * 1000, 2) if n else float("nan")

    result = {"requests": n, "requests_per_second": round(n / seconds, 1),
              "p50_ms": pct(0.50), "p99_ms": pct(0.99),
              "mean_ms": round(statistics.fmean(all_lat) * 1000, 2) if n else None,
              "errors": sum(errors), "error_statuses": statuses}
    if len(samples) == 2 and n:
        # CPU of each part in the measured window, per request (ms), and what
        # else kept the machine busy meanwhile (other processes: a noisy run)
        used = {k: samples[1][k] - samples[0][k] for k in samples[0]}
        busy, total = used.pop("machine_busy"), used.pop("machine_total")
        result["cpu_ms_per_request"] = {k: round(v / n * 1000, 3) for k, v in used.items()}
        result["machine_cpu"] = {
            "busy_share": round(busy / total, 3) if total else None,
            "other_processes_ms_per_request": round((busy - sum(used.values())) / n * 1000, 3)}
    return result


def _cpu_ratio(results: dict, kind: str, baseline: str) -> float | None:
    try:
        per_request = {k: sum(results[k]["cpu_ms_per_request"].values()) for k in (kind, baseline)}
    except KeyError:
        return None
    return round(per_request[baseline] / per_request[kind], 3)


def _rate_ratio(results: dict, kind: str, baseline: str) -> float:
    return round(results[kind]["requests_per_second"]
                 / max(results[baseline]["requests_per_second"], 1e-9), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    # the defaults of `refflow web` (refflow.commands.web)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--limits-storage", choices=("redis", "memory"), default="redis")
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]

    from sqlalchemy import create_engine, text

    from refflow.accounts.practices import create_practice, issue_key
    from refflow.config import load_settings
    from refflow.db import database_for, migrate

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    data_dir = Path(f"/tmp/refflow-bench-{schema}")
    app_name = f"refflow-{schema}"  # finds the server's PostgreSQL backends for CPU accounting
    sep = "&" if "?" in PG_URL else "?"
    env = {"REFFLOW_DATABASE_URL": f"{PG_URL}{sep}application_name={app_name}",
           "REFFLOW_DATABASE_SCHEMA": schema,
           "REFFLOW_DATA_DIR": str(data_dir), "REFFLOW_SECRET_KEY": "bench",
           "REFFLOW_INTAKE_RATE_LIMIT": "1000000/minute", "REFFLOW_LOG_LEVEL": "WARNING"}
    procs = []
    redis_proc = None
    try:
        if args.limits_storage == "redis":
            from refflow.embedded import start_redis

            redis_proc, env["REFFLOW_BROKER_URL"] = start_redis(data_dir / "redis")
        settings = load_settings(env)
        db = database_for(settings)
        migrate.upgrade(db)
        with db.session() as session:
            practice = create_practice(session, "Bench Practice", fax="+1 763 555 0198")
            _, key = issue_key(session, practice)
        db.dispose()
        env["REFFLOW_BENCH_API_KEY"] = key  # the work floor's statement checks it
        results = {}
        ctx = mp.get_context("spawn")
        for kind in ("ceiling", "floor", "intake"):
            port = free_port()
            proc = ctx.Process(target=_serve, args=(kind, port, args.workers, args.threads, env),
                               daemon=True)
            proc.start()
            procs.append(proc)
            wait_ready(port, "/healthz" if kind == "intake" else "/")
            headers = {"Content-Type": "application/json",
                       "Authorization": f"Bearer {key}"}
            meter = CpuMeter(proc.pid, redis_proc.pid if redis_proc is not None else None,
                             PG_URL, app_name if kind != "ceiling" else "")
            results[kind] = load(port, headers, args.seconds, args.concurrency, args.warmup,
                                 meter)
            proc.terminate()
            proc.join(15)
        ratio = _rate_ratio(results, "intake", "ceiling")
        out = {
            "benchmark": "intake",
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(),
                        "load_average_before": load_before,
                        "load_average_after": [round(x, 2) for x in os.getloadavg()]},
            "server": {"gunicorn_workers": args.workers, "threads": args.threads,
                       "worker_class": "gthread" if args.threads > 1 else "sync",
                       "database": "postgresql", "synchronous_commit": "on",
                       "rate_limit_storage": "redis" if env.get("REFFLOW_BROKER_URL")
                       else "memory",
                       "broker_url_set": bool(env.get("REFFLOW_BROKER_URL"))},
            "load": {"clients": args.concurrency, "seconds": args.seconds,
                     "warmup_seconds": args.warmup, "generator": "threads, keep-alive, closed loop"},
            "ceiling_minimal_flask": results["ceiling"],
            "work_floor": results["floor"],
            "intake": results["intake"],
            "intake_vs_ceiling": ratio,
            # the same ratio from CPU per request of every part (server,
            # PostgreSQL, Redis, load generator): what the throughput ratio is
            # when both runs saturate the cores, whatever else ran meanwhile
            "intake_vs_ceiling_by_cpu": _cpu_ratio(results, "intake", "ceiling"),
            # the required I/O alone against the ceiling: the most any intake
            # that stores and counts each referral as refflow does could reach
            "floor_vs_ceiling": _rate_ratio(results, "floor", "ceiling"),
            "floor_vs_ceiling_by_cpu": _cpu_ratio(results, "floor", "ceiling"),
            # what refflow's own logic leaves of the floor
            "intake_vs_floor": _rate_ratio(results, "intake", "floor"),
            "targets": {"ratio_min": 0.5, "p99_ms_max": 25, "errors": 0},
            "meets_targets": bool(ratio >= 0.5 and results["intake"]["p99_ms"] <= 25
                                  and results["intake"]["errors"] == 0),
        }
        print(json.dumps(out, indent=2))
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(10)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
