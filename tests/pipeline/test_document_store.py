"""The document store: documents' bytes live in a folder or in S3-compatible
object storage, never in the database; every read is checked against the
recorded SHA-256; the retention period purges closed referrals' documents.
Received faxes' images live in the same store.

S3 is a real S3-compatible HTTP server (moto's server, started here) that
boto3 talks to over HTTP. The in-process tests run on SQLite and PostgreSQL,
each with the file store and with S3; one test runs the real worker and
scheduler (``refflow worker`` / ``refflow scheduler``) on S3.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import subprocess
import sys
import uuid

import boto3
import pytest
from moto.server import ThreadedMotoServer
from sample_referrals import routine
from sqlalchemy import select, update

from refflow import embedded
from refflow.app import create_app
from refflow.config import ConfigError, load_settings
from refflow.db import blobstore
from refflow.db.models import AuditEntry, Delivery, Document, ReceivedFax, Referral
from refflow.faxin import inbox
from refflow.pipeline import flow, outbox, staff_actions
from refflow.pipeline.context import Pipeline
from refflow.pipeline.stored_documents import move_into_store, purge_expired, store_documents

BUCKET = "refflow-documents"
CREDENTIALS = {"document_store_access_key_id": "test-key",
               "document_store_secret_access_key": "test-secret",
               "document_store_region": "us-east-1"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def s3_server():
    """An S3-compatible server on a free port, with the bucket; yields its
    URL and a boto3 client of its own (to look at the objects directly)."""
    port = embedded.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test-key",
        aws_secret_access_key="test-secret")
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


class Objects:
    """The store's blobs as they are, read and changed without refflow's code."""

    def __init__(self, settings, s3=None) -> None:
        self.settings = settings
        self.s3 = s3
        url = settings.document_store_url
        if s3 is None:
            self.root = blobstore.FileStore(url[len("file:"):]).root
        else:
            self.prefix = url.split(f"s3://{BUCKET}/", 1)[1] + "/"

    def get(self, key: str) -> bytes | None:
        if self.s3 is None:
            path = self.root / key
            return path.read_bytes() if path.exists() else None
        try:
            return self.s3.get_object(Bucket=BUCKET, Key=self.prefix + key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None

    def put(self, key: str, data: bytes) -> None:
        if self.s3 is None:
            (self.root / key).write_bytes(data)
        else:
            self.s3.put_object(Bucket=BUCKET, Key=self.prefix + key, Body=data)

    def keys(self, referral_id: str) -> set[str]:
        under = f"documents/{referral_id}/"
        if self.s3 is None:
            folder = self.root / under
            return {under + p.name for p in folder.iterdir()} if folder.exists() else set()
        found = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=self.prefix + under)
        return {o["Key"][len(self.prefix):] for o in found.get("Contents", [])}


@pytest.fixture(params=["file", "s3"])
def store(request, settings):
    """(settings with this store, the store's blobs seen directly)."""
    if request.param == "file":
        return settings, Objects(settings)
    endpoint, client = request.getfixturevalue("s3_server")
    s = settings.with_overrides(document_store=f"s3://{BUCKET}/{uuid.uuid4().hex}",
                                document_store_endpoint_url=endpoint,
                                document_store_sse="AES256", **CREDENTIALS)
    return s, Objects(s, client)


@pytest.fixture
def planned(store, make_practice):
    """A referral taken by the API and planned by the worker's step (in this
    process): (API client, its headers, the Pipeline, the referral's id)."""
    settings, _ = store
    client = create_app(settings, {"TESTING": True}).test_client()
    _, key = make_practice()
    auth = {"Authorization": f"Bearer {key}"}
    r = client.post("/api/v1/referrals", json=routine(), headers=auth)
    assert r.status_code == 202, r.get_json()
    rid = r.get_json()["id"]
    p = Pipeline(settings, publish=lambda task, args: None)
    outbox.relay(p.db, lambda task, args: None)
    assert flow.build_plan(p, rid) == "delivering"
    return client, auth, p, rid


def documents(p: Pipeline, rid: str) -> dict[str, Document]:
    with p.db.session() as s:
        return {d.name: d for d in s.scalars(select(Document).where(Document.referral_id == rid))}


def test_documents_live_in_the_store_and_come_back_the_same(store, planned):
    _, objects = store
    client, auth, p, rid = planned
    docs = documents(p, rid)
    assert {"summary.pdf", "handout.pdf", "chart.pdf", "fax.tiff"} <= set(docs)
    for doc in docs.values():
        assert doc.content is None  # nothing of it in the database
        assert doc.store_key == f"documents/{rid}/{doc.id}-{doc.sha256}"
        assert sha256(objects.get(doc.store_key)) == doc.sha256
    if objects.s3 is None:  # the file store: readable by its owner only
        path = objects.root / docs["summary.pdf"].store_key
        assert path.stat().st_mode & 0o777 == 0o600
        assert not list(path.parent.glob(".tmp-*"))
    else:  # the server-side encryption setting reached the server
        head = objects.s3.head_object(Bucket=BUCKET,
                                      Key=objects.prefix + docs["summary.pdf"].store_key)
        assert head["ServerSideEncryption"] == "AES256"

    r = client.get(f"/api/v1/referrals/{rid}/documents/summary.pdf", headers=auth)
    assert r.status_code == 200 and r.data.startswith(b"%PDF")
    assert sha256(r.data) == docs["summary.pdf"].sha256 == r.headers["ETag"]

    # a channel sends the stored bytes: the chart record the pdf channel files
    with p.db.session() as s:
        chart = s.scalar(select(Delivery).where(Delivery.referral_id == rid,
                                                Delivery.channel == "pdf"))
    assert flow.deliver(p, chart.id) == "sent"
    [filed] = (p.settings.documents_dir / "chart" / rid).glob("*.pdf")
    assert sha256(filed.read_bytes()) == docs["chart.pdf"].sha256


def test_retention_purges_a_closed_referrals_documents_and_downloads_say_gone(store, planned):
    settings, objects = store
    client, auth, p, rid = planned
    docs = documents(p, rid)
    assert purge_expired(p) == 0  # retention 0: documents are kept
    month = Pipeline(settings.with_overrides(document_retention_days=30), db=p.db)
    assert purge_expired(month) == 0  # closed? not yet; and made just now
    assert purge_expired(p, older_than=dt.timedelta(0)) == 0  # still delivering

    with p.db.session() as s:
        staff_actions.cancel(s, s.get(Referral, rid), actor="user:staff", reason="duplicate")
    assert purge_expired(month) == 0  # closed a moment ago, not 30 days
    assert purge_expired(p, older_than=dt.timedelta(0)) == len(docs)

    after = documents(p, rid)
    assert set(after) == set(docs)  # the rows stay
    for doc in after.values():
        assert doc.purged_at is not None and doc.content is None
        assert objects.get(doc.store_key) is None
    assert objects.keys(rid) == set()
    with p.db.session() as s:
        [audit] = s.scalars(select(AuditEntry).where(AuditEntry.referral_id == rid,
                                                     AuditEntry.action == "documents.purge"))
    assert audit.actor == "retention" and "summary.pdf" in audit.detail

    r = client.get(f"/api/v1/referrals/{rid}/documents/summary.pdf", headers=auth)
    assert r.status_code == 410
    assert r.get_json()["error"]["code"] == "gone"
    assert "retention period" in r.get_json()["error"]["message"]
    fhir = client.get(f"/fhir/R4/Binary/{docs['summary.pdf'].id}", headers=auth)
    assert fhir.status_code == 410 and fhir.get_json()["resourceType"] == "OperationOutcome"
    assert purge_expired(p, older_than=dt.timedelta(0)) == 0  # once


def test_a_changed_blob_is_refused_not_served(store, planned, caplog):
    _, objects = store
    client, auth, p, rid = planned
    summary = documents(p, rid)["summary.pdf"]
    objects.put(summary.store_key, b"%PDF-1.4 not the summary that was rendered")
    with caplog.at_level(logging.ERROR, logger="refflow.blobstore"):
        r = client.get(f"/api/v1/referrals/{rid}/documents/summary.pdf", headers=auth)
    assert r.status_code == 500 and b"not the summary" not in r.data
    assert f"blob {summary.store_key} does not match its recorded SHA-256" in caplog.text


def test_a_rolled_back_write_leaves_no_blob_and_a_replaced_blob_goes(store, planned):
    _, objects = store
    client, auth, p, rid = planned
    before = objects.keys(rid)
    old_summary = documents(p, rid)["summary.pdf"].store_key
    with pytest.raises(RuntimeError), p.db.session() as s:
        store_documents(p.store, s, rid, {"summary.pdf": b"%PDF-1.4 rolled back",
                                          "extra.pdf": b"%PDF-1.4 extra"})
        s.flush()
        raise RuntimeError("the step failed after writing")
    assert objects.keys(rid) == before
    assert "extra.pdf" not in documents(p, rid)

    with p.db.session() as s:
        store_documents(p.store, s, rid, {"summary.pdf": b"%PDF-1.4 rendered again"})
    summary = documents(p, rid)["summary.pdf"]
    assert objects.keys(rid) == before - {old_summary} | {summary.store_key}
    r = client.get(f"/api/v1/referrals/{rid}/documents/summary.pdf", headers=auth)
    assert r.data == b"%PDF-1.4 rendered again"


def test_a_document_stored_before_the_store_is_read_from_its_row(planned):
    client, auth, p, rid = planned
    old = b"%PDF-1.4 kept in the database before migration 0012"
    with p.db.session() as s:
        s.execute(update(Document).where(Document.referral_id == rid,
                                         Document.name == "summary.pdf")
                  .values(store_key=None, content=old, sha256=sha256(old), size=len(old)))
    r = client.get(f"/api/v1/referrals/{rid}/documents/summary.pdf", headers=auth)
    assert r.status_code == 200 and r.data == old


def test_rows_from_before_the_store_move_into_it(store, planned, fax_document):
    _, objects = store
    client, auth, p, rid = planned
    old = b"%PDF-1.4 kept in the database before migration 0012"
    tiff = fax_document("Referral: hip", pages=1)
    fax_id = inbox.receive(p, tiff, source="cli").fax_id
    with p.db.session() as s:  # as the rows were before: bytes in content, no key
        s.execute(update(Document).where(Document.referral_id == rid,
                                         Document.name == "summary.pdf")
                  .values(store_key=None, content=old, sha256=sha256(old), size=len(old)))
        s.execute(update(ReceivedFax).where(ReceivedFax.id == fax_id)
                  .values(store_key=None, content=tiff))
    p.store.delete(blobstore.fax_key(fax_id))
    assert move_into_store(p) == (1, 1)
    assert move_into_store(p) == (0, 0)
    summary = documents(p, rid)["summary.pdf"]
    assert summary.content is None and objects.get(summary.store_key) == old
    with p.db.session() as s:
        fax = s.get(ReceivedFax, fax_id)
    assert fax.content is None and objects.get(fax.store_key) == tiff
    r = client.get(f"/api/v1/referrals/{rid}/documents/summary.pdf", headers=auth)
    assert r.data == old


def test_refflow_documents_migrate(sqlite_settings):
    env = {"REFFLOW_DATA_DIR": str(sqlite_settings.data_dir), "REFFLOW_SECRET_KEY": "test-secret",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "refflow", "documents", "migrate"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("moved 0 document(s) and 0 received fax(es) into ")
    bad = subprocess.run([sys.executable, "-m", "refflow", "documents", "migrate"],
                         env={**env, "REFFLOW_DOCUMENT_STORE": "ftp://elsewhere"},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "REFFLOW_DOCUMENT_STORE must be" in bad.stderr


def test_a_received_fax_image_lives_in_the_store_and_goes_with_its_purge(store, fax_document):
    settings, objects = store
    p = Pipeline(settings)
    tiff = fax_document("Referral: knee", pages=1)
    fax_id = inbox.receive(p, tiff, source="cli").fax_id
    with p.db.session() as s:
        row = s.get(ReceivedFax, fax_id)
        assert row.content is None and row.store_key == f"received-faxes/{fax_id}"
        png = inbox.page_png(s, p.store, fax_id, 1, actor="user:staff")
    assert objects.get(row.store_key) == tiff and png.startswith(b"\x89PNG")
    inbox.archive(p, fax_id, "not for this clinic", actor="user:staff")
    assert inbox.purge(p, older_than=dt.timedelta(0)) == 1
    assert objects.get(row.store_key) is None


@pytest.mark.parametrize("value", ["ftp://host/x", "file:relative/path", "s3://", "file:"])
def test_a_store_setting_refflow_cannot_use_is_refused(tmp_path, value):
    with pytest.raises(ConfigError, match="REFFLOW_DOCUMENT_STORE"):
        load_settings({"REFFLOW_DOCUMENT_STORE": value}, data_dir=tmp_path, secret_key="x")


# -- the real worker and scheduler, on S3 --------------------------------------------


@pytest.fixture(scope="module")
def stack_env(s3_server):
    endpoint, _ = s3_server
    return {"REFFLOW_DOCUMENT_STORE": f"s3://{BUCKET}/stack-{uuid.uuid4().hex}",
            "REFFLOW_DOCUMENT_STORE_ENDPOINT_URL": endpoint,
            **{f"REFFLOW_{k.upper()}": v for k, v in CREDENTIALS.items()}}


def test_the_worker_renders_into_s3_and_sends_from_it(stack, intake, smtp, s3_server):
    r = intake.post("/api/v1/referrals", json=routine(), headers=intake.auth)
    assert r.status_code == 202, r.get_json()
    rid = r.get_json()["id"]
    stack.wait_for([rid], timeout=90)
    objects = Objects(stack.settings, s3_server[1])
    docs = documents(Pipeline(stack.settings), rid)
    assert all(d.content is None for d in docs.values())
    assert objects.keys(rid) == {d.store_key for d in docs.values()}
    handout = objects.get(docs["handout.pdf"].store_key)
    assert sha256(handout) == docs["handout.pdf"].sha256

    # the email the SMTP server received carries the handout S3 holds
    email_delivery = next(d for d in stack.deliveries(rid) if d.channel == "email")
    [message] = smtp.for_delivery(email_delivery.id)
    [attachment] = [part.get_payload(decode=True) for part in message.walk()
                    if part.get_content_type() == "application/pdf"]
    assert attachment == handout
    r = intake.get(f"/api/v1/referrals/{rid}/documents/summary.pdf", headers=intake.auth)
    assert sha256(r.data) == docs["summary.pdf"].sha256
