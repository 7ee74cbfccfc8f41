"""The alert sweep inside the real ``refflow scheduler`` process: the worker
stops, the scheduler emails one "started: no worker online" to a real SMTP
server; the worker is back, one "cleared"."""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import select

from refflow.db.models import Incident
from refflow.ops import alerts
from refflow.ops.queues import broker_stats_reader

ADDRESS = "oncall@clinic.example"
STARTED = "[refflow] STARTED: no worker online"
CLEARED = "[refflow] CLEARED: no worker online"


@pytest.fixture(scope="module")
def stack_env() -> dict:
    return {"REFFLOW_ALERT_EMAIL": ADDRESS, "REFFLOW_ALERT_CHECK_SECONDS": "0.5",
            "REFFLOW_ALERT_NO_WORKER_SECONDS": "2"}


def _subjects(smtp) -> list[str]:
    with smtp.lock:
        return [m["Subject"] for m in smtp.messages if m["To"] == ADDRESS]


def _wait(condition, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return result


def _open_no_worker(stack) -> list[Incident]:
    with stack.db.session() as session:
        return list(session.scalars(select(Incident).where(
            Incident.kind == alerts.NO_WORKER, Incident.cleared_at.is_(None))))


def test_the_scheduler_tells_once_when_no_worker_is_online_and_once_when_one_is_back(
        stack, smtp, redis_server):
    stats = broker_stats_reader(redis_server.url)
    _wait(lambda: stats()["workers_online"] >= 1, "the worker to start")
    _wait(lambda: not _open_no_worker(stack), "the start-up incident (if any) to clear")
    before = len(_subjects(smtp))  # a slow worker start may have been told already

    stack.kill("worker", signal.SIGTERM)
    _wait(lambda: STARTED in _subjects(smtp)[before:], "the started email")
    stack.start_worker()
    _wait(lambda: CLEARED in _subjects(smtp)[before:], "the cleared email")
    assert _subjects(smtp)[before:] == [STARTED, CLEARED]
    with stack.db.session() as session:
        incident = session.scalars(select(Incident).where(Incident.kind == alerts.NO_WORKER)
                                   .order_by(Incident.id.desc())).first()
    assert incident.start_notified_at is not None and incident.clear_notified_at is not None
