"""The example third-party plugin (examples/refflow-httpfax) used end to end:
with ``REFFLOW_FAX_TRANSPORT=httpfax`` the referrer's fax goes through refflow's
own ``fax`` channel and the plugin's transport, to a real local HTTP server."""

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
        received.append({"key": self.headers.get("Idempotency-Key"),
                         "to": self.headers.get("X-Fax-To"), "body": body})
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
    server.server_close()


@pytest.fixture(scope="module")
def stack_env(provider):
    return {"REFFLOW_HTTPFAX_URL": provider, "REFFLOW_LOAD_PLUGINS": "httpfax",
            "REFFLOW_FAX_TRANSPORT": "httpfax"}


def test_the_fax_goes_through_the_example_transport(stack, intake):
    rid = submit(intake, routine(external_id="EHR-HTTPFAX"))
    stack.wait_for([rid], statuses=("completed", "needs_review"), timeout=60)
    if intake.get(f"/api/v1/referrals/{rid}", headers=intake.auth).get_json()["status"] \
            == "needs_review":
        as_staff(intake, stack)
        assert intake.post(f"/api/v1/referrals/{rid}/approve").status_code == 200
    stack.wait_for([rid], timeout=60)
    deliveries = {d.channel: d for d in stack.deliveries(rid)}
    assert set(deliveries) == {"fax", "email", "pdf"}  # no routing hook: the default routes
    fax = deliveries["fax"]
    assert fax.status == "sent"
    (sent,) = [r for r in received if r["key"] == fax.id]
    assert fax.reference == f"job-{received.index(sent) + 1}"  # the provider's job id
    assert sent["to"] == fax.target and sent["to"].startswith("+")
    assert sent["body"][:4] in (b"II*\x00", b"MM\x00*") and len(sent["body"]) > 1000
