"""`refflow run` as a newcomer starts it: one command, embedded defaults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sample_referrals import routine

from refflow.embedded import free_port


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_refflow_run_serves_a_referral_to_completion_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFFLOW_")}
    env["REFFLOW_DATA_DIR"] = str(tmp_path / "data")
    out = open(tmp_path / "run.log", "wb")
    # its own session, as a shell gives a foreground job: Ctrl+C goes to the group
    proc = subprocess.Popen([sys.executable, "-m", "refflow", "run", "--port", str(port)],
                            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not up yet, or busy
                pass
            assert proc.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
            time.sleep(0.2)
        banner = f"dashboard http://127.0.0.1:{port}/"
        for _ in range(50):  # printed once it has seen /readyz answer too
            log = (tmp_path / "run.log").read_text()
            if banner in log:
                break
            time.sleep(0.2)
        assert banner in log
        assert "staff login: staff@refflow.example.org / " in log

        added = subprocess.run([sys.executable, "-m", "refflow", "practice", "add", "Demo",
                                "--json"], env=env, capture_output=True, text=True, timeout=60)
        key = json.loads(added.stdout)["api_key"]
        auth = {"Authorization": f"Bearer {key}"}
        r = requests.post(f"{base}/api/v1/referrals", json=routine(), headers=auth, timeout=10)
        assert r.status_code == 202
        rid = r.json()["id"]
        deadline = time.monotonic() + 60
        while (status := requests.get(f"{base}/api/v1/referrals/{rid}", headers=auth,
                                      timeout=5).json()["status"]) != "completed":
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        data = tmp_path / "data"
        assert len(list((data / "fax-spool" / "sendq").glob("*.json"))) == 1
        assert len(list((data / "mail-outbox").glob("*.eml"))) == 1
        assert len(list((data / "documents" / "chart").glob("*/*.pdf"))) == 1
        tree = descendants(proc.pid)
        assert len(tree) >= 4  # redis, web, worker, scheduler (and their children)
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl+C in the terminal sends
        proc.wait(60)
    time.sleep(0.5)
    assert [pid for pid in tree if alive(pid)] == []
    # the broker outlived the worker: no lost connection while it shut down
    log = (tmp_path / "run.log").read_text()
    assert "Cannot connect" not in log and "Connection to broker lost" not in log, log[-3000:]
    assert log.rstrip().endswith("refflow stopped")


@pytest.mark.parametrize("command", ["run", "web"])
def test_a_port_in_use_fails_in_one_line_before_anything_is_announced(tmp_path, command):
    """Another server listens on the port: no banner, no staff password for
    someone else's server, no minute of retries — one line and exit 2."""
    import socket

    env = {k: v for k, v in os.environ.items() if not k.startswith("REFFLOW_")}
    env["REFFLOW_DATA_DIR"] = str(tmp_path / "data")
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        started = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "refflow", command, "--port", str(port)],
                             env=env, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 2, out
    assert out.stdout == ""
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("refflow: error: cannot listen on 127.0.0.1:") and str(port) in line
    assert time.monotonic() - started < 30
    assert not (tmp_path / "data" / "staff-login.json").exists()
