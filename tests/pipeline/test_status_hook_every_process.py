"""``refflow_referral_status_changed`` hears every committed status change, in
whatever process made it: the web process (intake's ``received``, staff
actions) and the real worker (planning, delivering, completed, failed) — the
docs' pager example watches for ``failed``.

The plugin is an installed distribution (a ``.dist-info`` with a ``refflow``
entry point on the path), loaded by the worker, the scheduler and the web app
exactly as a clinic's plugin would be."""

from __future__ import annotations

import json
import os
import sys

import pytest
from sample_referrals import routine

from refflow.plugins.manager import reset_plugin_managers

RECORDER = '''
import json, os
from refflow.plugins import hookimpl

@hookimpl
def refflow_referral_status_changed(referral, old, new):
    with open(os.environ["STATUS_RECORDER_FILE"], "a") as out:
        out.write(json.dumps([referral.id, old, new, os.getpid()]) + "\\n")
'''


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    (site / "status_recorder.py").write_text(RECORDER)
    info = site / "status_recorder-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: status-recorder\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[refflow]\nstatus_recorder = status_recorder\n")
    record = site / "status.jsonl"
    record.touch()
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "REFFLOW_LOAD_PLUGINS": "status_recorder", "STATUS_RECORDER_FILE": str(record)}
    # the web app runs in this process: the same plugin, found the same way
    sys.path.insert(0, str(site))
    os.environ["STATUS_RECORDER_FILE"] = str(record)
    reset_plugin_managers()
    yield env
    sys.path.remove(str(site))
    os.environ.pop("STATUS_RECORDER_FILE", None)
    reset_plugin_managers()


def _heard(stack_env, referral_id: str) -> list[tuple]:
    with open(stack_env["STATUS_RECORDER_FILE"]) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [(old, new, pid) for rid, old, new, pid in rows if rid == referral_id]


def test_every_status_change_reaches_the_plugin_once_in_order(stack, intake, stack_env):
    r = intake.post("/api/v1/referrals", json=routine(), headers=intake.auth)
    assert r.status_code == 202, r.get_json()
    rid = r.get_json()["id"]
    stack.wait_for([rid], ("completed",))
    heard = _heard(stack_env, rid)
    assert [(old, new) for old, new, _ in heard] == [
        (None, "received"), ("received", "planning"), ("planning", "planned"),
        ("planned", "delivering"), ("delivering", "completed")]
    # intake's change was heard in this (the web) process, the rest in the worker's
    assert heard[0][2] == os.getpid()
    assert all(pid != os.getpid() for _, _, pid in heard[1:])


def test_a_pager_plugin_hears_a_referral_fail(stack, intake, smtp, stack_env):
    smtp.fail_next.append("550 5.1.1 mailbox unavailable")  # a permanent refusal
    body = routine()
    body["deliver"] = {"fax_to_referrer": False, "email_to_patient": True, "chart_pdf": False}
    r = intake.post("/api/v1/referrals", json=body, headers=intake.auth)
    rid = r.get_json()["id"]
    stack.wait_for([rid], ("failed",))
    assert [(old, new) for old, new, _ in _heard(stack_env, rid)][-1] == ("delivering", "failed")
