"""The worker's own metrics endpoint, as the compose file deploys it: the image
sets PROMETHEUS_MULTIPROC_DIR to a folder nothing else creates in the worker's
container, and its healthcheck reads the worker's /metrics."""

from __future__ import annotations

import time

import pytest
import requests
from sample_referrals import routine

from refflow.embedded import free_port

PORT = free_port()


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory) -> dict:
    missing = tmp_path_factory.mktemp("container") / "tmp" / "refflow-metrics"
    return {"PROMETHEUS_MULTIPROC_DIR": str(missing),
            "REFFLOW_WORKER_METRICS_PORT": str(PORT),
            "REFFLOW_WORKER_METRICS_HOST": "127.0.0.1"}


def test_worker_metrics_serve_task_counts_with_a_multiprocess_dir_not_yet_created(
        stack, intake):
    r = intake.post("/api/v1/referrals", json=routine(), headers=intake.auth)
    assert r.status_code == 202
    stack.wait_for([r.get_json()["id"]], timeout=60)
    deadline = time.monotonic() + 30
    while True:
        try:
            text = requests.get(f"http://127.0.0.1:{PORT}/metrics", timeout=5).text
            if 'refflow_tasks_total{state="SUCCESS",task="refflow.build_plan"}' in text:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "the worker's /metrics never counted the tasks"
        time.sleep(0.2)
    assert 'task="refflow.deliver"' in text and "refflow_task_duration_seconds_bucket" in text
