"""`refflow audit export` as an operator runs it, on SQLite and PostgreSQL: a
referral's reads, changes and refused reads (JSON API, FHIR, portal) come out
as JSON Lines and as valid FHIR R4B AuditEvents, by ids only."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from web_forms import PASSWORD, sign_in

from refflow.accounts.users import create_user
from refflow.db.models import new_id

JSONL_FIELDS = ["id", "at", "actor", "action", "referral_id", "ip", "detail"]


@pytest.fixture
def run(settings):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFFLOW_")}
    env.update({"REFFLOW_DATA_DIR": str(settings.data_dir), "REFFLOW_SECRET_KEY": "x"})
    if settings.database_url:
        env.update({"REFFLOW_DATABASE_URL": settings.database_url,
                    "REFFLOW_DATABASE_SCHEMA": settings.database_schema})

    def run(*args):
        return subprocess.run([sys.executable, "-m", "refflow", "audit", "export", *args],
                              env=env, capture_output=True, text=True, timeout=120)

    return run


@pytest.fixture
def trail(client, db, make_practice, referral_body):
    """One referral of North: created, read, cancelled; Lake asks for it four
    ways and is refused each time."""
    _north_id, north_key = make_practice("North")
    _lake_id, lake_key = make_practice("Lake")
    with db.session() as s:
        create_user(s, "lake@practice.example", PASSWORD, role="practice", practice="Lake")
    north = {"Authorization": f"Bearer {north_key}"}
    lake = {"Authorization": f"Bearer {lake_key}"}
    r = client.post("/api/v1/referrals", json=referral_body, headers=north)
    assert r.status_code == 202, r.text
    rid = r.get_json()["id"]
    assert client.get(f"/api/v1/referrals/{rid}", headers=north).status_code == 200
    assert client.get(f"/api/v1/referrals/{rid}", headers=lake).status_code == 404
    assert client.get(f"/fhir/R4/Task/{rid}", headers=lake).status_code == 404
    assert client.get("/fhir/R4/Task", query_string={"based-on": f"ServiceRequest/{rid}"},
                      headers=lake).get_json()["total"] == 0
    assert client.get(f"/fhir/R4/Binary/{new_id()}", headers=lake).status_code == 404
    assert sign_in(client, "lake@practice.example").status_code == 302
    assert client.get(f"/portal/referrals/{rid}").status_code == 404
    assert client.post(f"/api/v1/referrals/{rid}/cancel", headers=north).status_code == 200
    return {"referral_id": rid}


def _today() -> str:
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def test_reads_changes_and_refused_reads_export_as_json_lines(run, trail, referral_body):
    out = run("--since", _today())
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert all(list(row) == JSONL_FIELDS for row in rows)
    assert [row["id"] for row in rows] == sorted(row["id"] for row in rows)
    rid = trail["referral_id"]
    about = [(row["action"], row["actor"].split(":")[0]) for row in rows
             if row["referral_id"] == rid]
    assert ("referral.create", "apikey") in about
    assert ("referral.read", "apikey") in about
    assert ("referral.cancel", "apikey") in about
    refused = [row for row in rows if row["action"] == "referral.read_refused"]
    assert [row["detail"] for row in refused] == [
        "GET referrals_api.get_referral: another practice's referral",
        "GET fhir.read_task: another practice's referral",
        "GET fhir.search_tasks: another practice's referral",
        "GET fhir.read_binary: no such document",
        "GET portal.referral: another practice's referral",
    ]
    assert [row["referral_id"] for row in refused] == [rid, rid, rid, None, rid]
    assert {row["ip"] for row in refused} == {"127.0.0.1"}
    assert refused[-1]["actor"].startswith("user:")  # the portal's signed-in practice user
    # ids only: nothing of the patient
    for value in (referral_body["patient"]["family_name"], referral_body["patient"]["phone"],
                  referral_body["patient"]["birth_date"]):
        assert value not in out.stdout


def test_the_fhir_format_is_one_valid_audit_event_a_line(run, trail):
    out = run("--since", _today(), "--format", "fhir")
    assert out.returncode == 0, out.stderr
    events = [AuditEvent.model_validate_json(line) for line in out.stdout.splitlines()]
    assert events
    rid = trail["referral_id"]
    by_action = {}
    for event in events:
        by_action.setdefault(event.subtype[0].code, []).append(event)
    read = by_action["referral.read"][0]
    assert (read.action, read.outcome, read.type.code) == ("R", "0", "110110")
    assert read.entity[0].what.reference == f"Task/{rid}"
    assert read.agent[0].requestor is True
    assert read.agent[0].network.address == "127.0.0.1"
    assert read.recorded.tzinfo is not None
    assert by_action["referral.create"][0].action == "C"
    assert by_action["referral.cancel"][0].action == "U"
    assert by_action["login"][0].type.code == "110114"
    refused = by_action["referral.read_refused"]
    assert [(e.action, e.outcome, e.entity[0].what and e.entity[0].what.reference)
            for e in refused] == [("R", "4", f"Task/{rid}")] * 3 + [("R", "4", None)] \
        + [("R", "4", f"Task/{rid}")]


def test_since_and_until_choose_the_entries(run, trail):
    tomorrow = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).date().isoformat()
    out = run("--since", tomorrow)
    assert out.returncode == 0 and out.stdout == ""
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    until_now = run("--since", _today(), "--until", now)
    assert until_now.returncode == 0
    ids = [json.loads(line)["id"] for line in until_now.stdout.splitlines()]
    assert ids and len(ids) == len(set(ids))
    # the export went on the audit trail, after ``now``: only a later export shows it
    later = run("--since", now)
    assert [json.loads(line)["action"] for line in later.stdout.splitlines()] == ["audit.export"]


def test_out_writes_a_private_file(run, trail, tmp_path):
    target = tmp_path / "audit.ndjson"
    out = run("--since", _today(), "--format", "fhir", "--out", str(target))
    assert out.returncode == 0, out.stderr
    lines = target.read_text().splitlines()
    assert out.stdout == "" and f"{len(lines)} audit entries written to" in out.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert all(AuditEvent.model_validate_json(line) for line in lines)


@pytest.mark.parametrize("args,message", [
    (("--since", "last tuesday"), "--since 'last tuesday': give a date"),
    (("--since", "2026-12-01T08:00:00"), "a time with its offset"),
    (("--since", "2026-12-02", "--until", "2026-12-01"), "--until must be later"),
    (("--since", "2026-12-01", "--format", "xml"), "'xml' is not one of"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFFLOW_")}
    out = subprocess.run([sys.executable, "-m", "refflow", "audit", "export", *args],
                         env={**env, "REFFLOW_DATA_DIR": str(tmp_path)}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr
