"""Prometheus metrics (served at ``GET /metrics`` by ``refflow.web.metrics``).

Process metrics (HTTP requests, intake latency, task durations and outcomes)
are prometheus-client counters and histograms. Under gunicorn (and a Celery
prefork worker) every process writes them to ``PROMETHEUS_MULTIPROC_DIR`` and a
scrape aggregates all of them (``refflow.web.server`` sets the directory up
and marks dead workers). State that lives in the database or the broker —
referrals by state, deliveries by channel and outcome, the outbox backlog,
queue depth, workers online — is read at scrape time by a collector, so every
web process reports the same numbers whichever machine the workers run on.
The counts are the few rows the database keeps as work happens
(``refflow.referrals.counts``), never aggregates over all history, so a
scrape costs the same at any volume.

Labels are route rules (``/api/v1/referrals/<referral_id>``), task names,
channel names, states and status codes: never ids, never patient data.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger("refflow.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

HTTP_REQUESTS = Counter("refflow_http_requests_total", "HTTP requests by route rule and status",
                        ["method", "endpoint", "status"])
HTTP_DURATION = Histogram("refflow_http_request_duration_seconds",
                          "HTTP request duration by route rule", ["method", "endpoint"],
                          buckets=LATENCY_BUCKETS)
INTAKE_DURATION = Histogram("refflow_intake_duration_seconds",
                            "POST /api/v1/referrals latency by outcome "
                            "(accepted, rejected, client_error, server_error)",
                            ["outcome"], buckets=LATENCY_BUCKETS)
TASK_DURATION = Histogram("refflow_task_duration_seconds", "Celery task run time by task",
                          ["task", "state"], buckets=TASK_BUCKETS)
TASKS = Counter("refflow_tasks_total", "Celery task runs by task and final state", ["task", "state"])
TASK_RETRIES = Counter("refflow_task_retries_total", "Celery task retries by task", ["task"])

INTAKE_RULE = "/api/v1/referrals"
ATTEMPT_OUTCOMES = ("sent", "transient", "permanent")  # an attempt is "sending" until then


def enable_multiprocess(directory: str) -> None:
    """Write this process's metrics to ``directory`` (call before the first sample)."""
    os.makedirs(directory, exist_ok=True)
    os.environ[MULTIPROC_ENV] = directory
    values.ValueClass = values.get_value_class()


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def mark_process_dead(pid: int) -> None:
    if multiprocess_enabled():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class StateCollector:
    """Numbers read from the database and the broker at scrape time."""

    def __init__(self, db, broker_stats=None) -> None:
        self.db = db
        self.broker_stats = broker_stats

    def describe(self):  # no auto-describe: collect() queries the database
        return []

    def collect(self):
        from refflow.pipeline.outbox import backlog
        from refflow.referrals import counts, states

        up = GaugeMetricFamily("refflow_database_up", "1 when the scrape could read the database")
        try:
            kept = counts.read_and_fold(self.db)
            with self.db.session() as session:
                outbox = backlog(session)
            by_state = kept.referrals
            deliveries = [(c, s, n) for (c, s), n in sorted(kept.deliveries.items())]
            attempts = [(c, o, n) for (c, o), n in sorted(kept.attempts.items())
                        if o in ATTEMPT_OUTCOMES]
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail with the database
            log.warning("metrics: database unavailable (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
        else:
            up.add_metric([], 1)
            yield up
            g = GaugeMetricFamily("refflow_referrals", "Referrals by state", labels=["state"])
            for state in states.STATES:
                g.add_metric([state], by_state.get(state, 0))
            yield g
            g = GaugeMetricFamily("refflow_deliveries", "Deliveries by channel and state",
                                  labels=["channel", "state"])
            for channel, status, count in deliveries:
                g.add_metric([channel, status], count)
            yield g
            c = CounterMetricFamily("refflow_delivery_attempts",
                                    "Delivery attempts by channel and outcome "
                                    "(sent, transient = retried, permanent)",
                                    labels=["channel", "outcome"])
            r = CounterMetricFamily("refflow_delivery_retries",
                                    "Delivery attempts that failed transiently (then retried)",
                                    labels=["channel"])
            for channel, outcome, count in attempts:
                c.add_metric([channel, outcome], count)
                if outcome == "transient":
                    r.add_metric([channel], count)
            yield c
            yield r
            g = GaugeMetricFamily("refflow_outbox_backlog", "Outbox messages not yet published")
            g.add_metric([], outbox)
            yield g
        if self.broker_stats is not None:
            bup = GaugeMetricFamily("refflow_broker_up", "1 when the scrape could read the broker")
            try:
                stats = self.broker_stats()
            except Exception:  # noqa: BLE001
                bup.add_metric([], 0)
                yield bup
                return
            bup.add_metric([], 1)
            yield bup
            g = GaugeMetricFamily("refflow_queue_depth", "Messages waiting in a broker queue",
                                  labels=["queue"])
            for queue, depth in stats["queue_depth"].items():
                g.add_metric([queue], depth)
            yield g
            g = GaugeMetricFamily("refflow_workers_online", "Workers with a live heartbeat")
            g.add_metric([], stats["workers_online"])
            yield g


def render(db, broker_stats=None) -> tuple[bytes, str]:
    """The Prometheus text of this process's (or, under gunicorn, every
    worker's) metrics and of the state read from the database and broker."""
    if multiprocess_enabled():
        from prometheus_client import multiprocess

        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
    else:
        processes = REGISTRY
    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector(db, broker_stats))
    return generate_latest(processes) + generate_latest(state), CONTENT_TYPE_LATEST


def observe_request(method: str, rule: str, status: int, elapsed: float,
                    intake_outcome: str | None = None) -> None:
    """Count one answered request; ``intake_outcome`` (the referral's status,
    or None) only for POST /api/v1/referrals."""
    HTTP_REQUESTS.labels(method, rule, str(status)).inc()
    HTTP_DURATION.labels(method, rule).observe(elapsed)
    if rule == INTAKE_RULE and method == "POST":
        outcome = ("server_error" if status >= 500 else "client_error" if status >= 400
                   else "rejected" if intake_outcome == "rejected" else "accepted")
        INTAKE_DURATION.labels(outcome).observe(elapsed)
