"""Intake load benchmark: POST /api/v1/referrals through the Flask view on
PostgreSQL, served as ``refflow web`` serves it (gunicorn, 2 gthread workers x
4 threads), with the rate limits counted in a Redis of the run's own. Prints
one JSON object.

The target (issue 13): at an offered 300 requests/s (ten times a national
peak) for 30 s, p99 <= 50 ms and zero errors. The load is open loop: requests
are sent on a fixed schedule whatever the server does, and each latency is
measured from the moment the request was due, so a server that falls behind
shows it in the percentiles.

For information only, the same run measures the most each server answers
with a closed loop (clients send the next request as soon as the last was
answered): the intake, and a minimal Flask JSON endpoint on the same server
(the framework ceiling); ``ceiling_ratio`` is the one over the other.

    python bench/intake.py [--rate 300] [--seconds 30] [--ceiling-seconds 10]

Needs PostgreSQL at REFFLOW_TEST_DATABASE_URL (default: the local test
database); a schema is created for the run and dropped afterwards. The load
generator runs on the same machine, with keep-alive connections.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import queue
import sys
import threading
import time
import uuid
from pathlib import Path

PG_URL = os.environ.get("REFFLOW_TEST_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parents[1]
BODY = (ROOT / "examples" / "referrals" / "design-example.json").read_bytes()


def _ceiling_app():
    from flask import Flask, jsonify, request

    app = Flask("ceiling")

    @app.post("/api/v1/referrals")
    def accept():
        data = request.get_json()
        return jsonify({"id": str(uuid.uuid4()), "status": "received", "fields": len(data)}), 202

    return app


def _serve(kind: str, port: int, workers: int, threads: int, env: dict) -> None:
    os.environ.update(env)
    from refflow.config import load_settings
    from refflow.web.server import serve

    serve(load_settings(), host="127.0.0.1", port=port, workers=workers, threads=threads,
          app_factory=_ceiling_app if kind == "ceiling" else None, loglevel="warning")


def _wait_ready(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


def _post(conn, headers: dict) -> tuple[http.client.HTTPConnection, int]:
    try:
        conn.request("POST", "/api/v1/referrals", body=BODY, headers=headers)
        response = conn.getresponse()
        response.read()
        return conn, response.status
    except (OSError, http.client.HTTPException):
        conn.close()
        return http.client.HTTPConnection(conn.host, conn.port, timeout=10), 0


def _summary(latencies: list[float], statuses: dict[int, int], seconds: float) -> dict:
    latencies.sort()
    n = len(latencies)

    def pct(p: float) -> float | None:
        return round(latencies[min(n - 1, int(p * n))] * 1000, 2) if n else None

    return {"requests": n, "requests_per_second": round(n / seconds, 1),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0),
            "errors": sum(v for k, v in statuses.items() if k != 202),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}}


def open_loop(port: int, headers: dict, rate: float, seconds: float, warmup: float,
              clients: int = 32) -> dict:
    """Send ``rate`` requests a second on schedule; latency counts from when
    each request was due (queueing in the generator included)."""
    due: queue.Queue = queue.Queue()
    latencies, statuses, lock = [], {}, threading.Lock()
    start = time.monotonic() + 0.2
    total = int((warmup + seconds) * rate)
    measure_from = start + warmup

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while (at := due.get()) is not None:
            conn, status = _post(conn, headers)
            if at >= measure_from:
                with lock:
                    latencies.append(time.monotonic() - at)
                    statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for i in range(total):
        at = start + i / rate
        time.sleep(max(0.0, at - time.monotonic()))
        due.put(at)
    for _ in threads:
        due.put(None)
    for t in threads:
        t.join()
    return _summary(latencies, statuses, seconds)


def closed_loop(port: int, headers: dict, seconds: float, clients: int = 8) -> dict:
    """As many requests as ``clients`` keep-alive clients get answered."""
    latencies, statuses, lock = [], {}, threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while (t0 := time.monotonic()) < stop_at:
            conn, status = _post(conn, headers)
            with lock:
                latencies.append(time.monotonic() - t0)
                statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _summary(latencies, statuses, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--ceiling-seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2)  # the defaults of `refflow web`
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]

    from sqlalchemy import create_engine, text

    from refflow.accounts.practices import create_practice, issue_key
    from refflow.config import load_settings
    from refflow.db import database_for, migrate
    from refflow.embedded import free_port, start_redis

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    data_dir = Path(f"/tmp/refflow-bench-{schema}")
    env = {"REFFLOW_DATABASE_URL": PG_URL, "REFFLOW_DATABASE_SCHEMA": schema,
           "REFFLOW_DATA_DIR": str(data_dir), "REFFLOW_SECRET_KEY": "bench",
           "REFFLOW_INTAKE_RATE_LIMIT": "1000000/minute", "REFFLOW_LOG_LEVEL": "WARNING"}
    redis_proc, env["REFFLOW_BROKER_URL"] = start_redis(data_dir / "redis")
    procs = []
    try:
        db = database_for(load_settings(env))
        migrate.upgrade(db)
        with db.session() as session:
            practice = create_practice(session, "Bench Practice", fax="+1 763 555 0198")
            _, key = issue_key(session, practice)
        db.dispose()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        ports = {}
        for kind in ("intake", "ceiling"):
            ports[kind] = free_port()
            proc = mp.get_context("spawn").Process(
                target=_serve, args=(kind, ports[kind], args.workers, args.threads, env),
                daemon=True)
            proc.start()
            procs.append(proc)
            _wait_ready(ports[kind])
        offered = open_loop(ports["intake"], headers, args.rate, args.seconds, args.warmup)
        most = {kind: closed_loop(ports[kind], headers, args.ceiling_seconds)
                for kind in ("intake", "ceiling")}
        out = {
            "benchmark": "intake",
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(),
                        "load_average_before": load_before,
                        "load_average_after": [round(x, 2) for x in os.getloadavg()]},
            "server": {"gunicorn_workers": args.workers, "threads": args.threads,
                       "database": "postgresql", "rate_limit_storage": "redis"},
            "offered_load": {"requests_per_second": args.rate, "seconds": args.seconds,
                             "warmup_seconds": args.warmup,
                             "generator": "open loop, latency from when each request was due"},
            "intake": offered,
            "targets": {"p99_ms_max": 50, "errors": 0},
            "meets_targets": bool(offered["p99_ms"] is not None and offered["p99_ms"] <= 50
                                  and offered["errors"] == 0
                                  and offered["requests"] >= 0.99 * args.rate * args.seconds),
            "information": {
                "closed_loop_seconds": args.ceiling_seconds, "clients": 8,
                "intake_most": most["intake"], "minimal_flask_most": most["ceiling"],
                "ceiling_ratio": round(most["intake"]["requests_per_second"]
                                       / max(most["ceiling"]["requests_per_second"], 1e-9), 3),
            },
        }
        print(json.dumps(out, indent=2))
    finally:
        for proc in procs:
            proc.terminate()
            proc.join(15)
        redis_proc.terminate()
        redis_proc.wait(10)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
