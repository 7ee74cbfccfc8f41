"""The example third-party plugin (examples/refflow-httpfax) used end to end:
its clinic rule shapes the plan and its channel receives the fax."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sample_referrals import routine
from test_pipeline_flow import as_staff, submit

received: list[dict] = []


class FaxProvider(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        received.append({"key": self.headers.get("Idempotency-Key"), "size": len(body),
                         "tiff": body[:4] == b"II*\x00" or b"II*\x00" in body[:4096]})
        answer = json.dumps({"id": f"job-{len(received)}", "status": "queued"}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def provider():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FaxProvider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/faxes"
    server.shutdown()


@pytest.fixture(scope="module")
def stack_env(provider):
    return {"REFFLOW_HTTPFAX_URL": provider, "REFFLOW_LOAD_PLUGINS": "httpfax"}


def test_example_plugin_rule_and_channel_work_in_the_pipeline(stack, intake):
    body = routine(external_id="EHR-86")
    body["patient"]["birth_date"] = "1939-06-01"  # 87 years old
    rid = submit(intake, body)
    stack.wait_for([rid], statuses=("completed", "needs_review"), timeout=60)
    plan = intake.get(f"/api/v1/referrals/{rid}/plan", headers=intake.auth).get_json()
    assert any(f["code"] == "in_clinic_first_visit" and f["source"] == "httpfax"
               for f in plan["flags"])
    if intake.get(f"/api/v1/referrals/{rid}", headers=intake.auth).get_json()["status"] \
            == "needs_review":
        as_staff(intake, stack)
        assert intake.post(f"/api/v1/referrals/{rid}/approve").status_code == 200
    stack.wait_for([rid], timeout=60)
    deliveries = {d.channel: d for d in stack.deliveries(rid)}
    assert set(deliveries) == {"httpfax", "email", "pdf"}
    fax = deliveries["httpfax"]
    assert fax.status == "sent"
    sent = [r for r in received if r["key"] == fax.id]
    assert len(sent) == 1 and sent[0]["size"] > 1000
