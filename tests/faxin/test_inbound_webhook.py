"""A fax provider's inbound webhook, ``POST /api/v1/fax/inbound/<transport>``,
through the example plugin's ``httpfax`` transport (signed JSON with the fax in
base64), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import logging
import os

import pytest
from sqlalchemy import func, select

from refflow.db.models import ReceivedFax

refflow_httpfax = pytest.importorskip("refflow_httpfax")  # installed by CI (examples/)

TOKEN = "provider-shared-secret"
URL = "/api/v1/fax/inbound/httpfax"


@pytest.fixture
def app(settings, monkeypatch):
    """The app with the example plugin loaded and configured (a token to check
    signatures with)."""
    from refflow.app import create_app

    monkeypatch.setenv("REFFLOW_HTTPFAX_URL", "http://127.0.0.1:9/unused")
    monkeypatch.setenv("REFFLOW_HTTPFAX_TOKEN", TOKEN)
    settings = settings.with_overrides(load_plugins=("httpfax",), intake_rate_limit="5/minute")
    return create_app(settings, {"TESTING": True})


def fax_json(content: bytes, *, ident="rx-0042", sender="(763) 555-0198",
             called="+1 763 555 0101") -> bytes:
    return json.dumps({"id": ident, "from": sender, "to": called,
                       "content": base64.b64encode(content).decode()}).encode()


def post(client, body: bytes, *, token: str | None = TOKEN, url: str = URL, headers=None):
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["X-Httpfax-Signature"] = refflow_httpfax.signature(token, body)
    return client.post(url, data=body, headers=sent)


def _faxes(db) -> list[ReceivedFax]:
    with db.session() as session:
        return session.scalars(select(ReceivedFax).order_by(ReceivedFax.received_at)).all()


def test_a_signed_fax_is_stored_once_and_answered_with_ids_only(client, db, fax_document,
                                                                 make_practice):
    practice_id, _ = make_practice("North Family Medicine", fax="+1 763 555 0198")
    body = fax_json(fax_document("Referral", pages=2))
    first = post(client, body)
    assert first.status_code == 200, first.get_json()
    received = first.get_json()["received"]
    assert len(received) == 1 and received[0]["created"] is True
    assert set(first.get_json()) == {"received"} and set(received[0]) == {"id", "created"}

    again = post(client, body)  # the provider retries
    assert again.status_code == 200
    assert again.get_json() == {"received": [{"id": received[0]["id"], "created": False}]}
    [fax] = _faxes(db)
    assert (fax.id, fax.source, fax.source_ref, fax.pages, fax.from_number, fax.to_number,
            fax.practice_id, fax.status) == (
        received[0]["id"], "httpfax", "rx-0042", 2, "+17635550198", "+17635550101",
        practice_id, "received")


def test_a_pdf_from_the_provider_is_a_fax_too(client, db, fax_document):
    response = post(client, fax_json(fax_document("Referral", kind="pdf"), ident="rx-pdf"))
    assert response.status_code == 200, response.get_json()
    assert [f.content_type for f in _faxes(db)] == ["application/pdf"]


def test_an_unsigned_or_wrongly_signed_request_is_refused(client, db, fax_document):
    body = fax_json(fax_document("Referral"))
    cases = {
        "unsigned": post(client, body, token=None),
        "another key": post(client, body, token="not-the-secret"),
        "tampered": client.post(URL, data=body.replace(b"rx-0042", b"rx-0043"), headers={
            "Content-Type": "application/json",
            "X-Httpfax-Signature": refflow_httpfax.signature(TOKEN, body)}),
        "garbage header": post(client, body, token=None,
                               headers={"X-Httpfax-Signature": "sha256=\u00e9\u00e9"}),
    }
    for case, response in cases.items():
        assert response.status_code == 401, case
        error = response.get_json()["error"]
        assert error["code"] == "unauthorized" and "signature" in error["message"], case
    assert _faxes(db) == []


@pytest.mark.parametrize("body,status,code", [
    (b"not json", 401, "unauthorized"),
    (json.dumps({"id": "rx-1"}).encode(), 401, "unauthorized"),
    (json.dumps({"id": "rx-1", "content": "%%%"}).encode(), 401, "unauthorized"),
    (json.dumps([1, 2]).encode(), 401, "unauthorized"),
    (fax_json(b"Ann Lee, born 1951-03-02"), 400, "not_a_fax"),
])
def test_a_signed_request_that_holds_no_fax_says_so_without_echoing_it(client, db, body,
                                                                         status, code):
    response = post(client, body)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["code"] == code and "Ann Lee" not in error["message"]
    assert _faxes(db) == []


def test_control_characters_from_the_provider_are_not_stored(client, db, fax_document):
    body = fax_json(fax_document("Referral"), ident="rx\x00-1\n2", sender="+1763\x005550198",
                    called="\x1b[31m")
    assert post(client, body).status_code == 200
    [fax] = _faxes(db)
    assert (fax.source_ref, fax.from_number, fax.to_number) == ("rx -1 2", "+17635550198",
                                                                 "[31m")


def test_transports_without_an_inbound_webhook_are_not_found(client):
    for name in ("spool", "hylafax", "no-such-transport"):
        response = post(client, b"{}", url=f"/api/v1/fax/inbound/{name}")
        assert response.status_code == 404, name
        assert response.get_json()["error"]["code"] == "not_found"


def test_a_fax_larger_than_the_json_api_limit_is_taken(client, db, settings):
    """A provider's webhook carries the fax itself: more than the 1 MiB a
    referral's JSON may be (here: content that is not a fax, which says so)."""
    big = b"%PDF-1.4\n" + os.urandom(settings.max_body_bytes + 200_000)
    response = post(client, fax_json(big))
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "not_a_fax"


def test_the_webhook_is_rate_limited_per_address(client, fax_document):
    statuses = [post(client, b"{}", token=None).status_code for _ in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429


def test_the_webhook_logs_no_caller_number(client, db, fax_document, caplog):
    with caplog.at_level(logging.DEBUG):
        response = post(client, fax_json(fax_document("Referral"), sender="+1 763 555 0198"))
    assert response.status_code == 200
    assert response.get_json()["received"][0]["id"] in caplog.text
    # the number in any form it could be written (not bare digit runs: a random
    # fax id may hold "555" or "0198")
    for form in ("5550198", "555 0198", "555-0198", "555.0198", "(763)"):
        assert form not in caplog.text
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ReceivedFax)) == 1
