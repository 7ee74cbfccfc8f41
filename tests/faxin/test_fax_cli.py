"""``refflow fax receive FILE`` as HylaFAX's FaxDispatch hook runs it: a real
process, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from refflow.db.models import OutboxMessage, ReceivedFax
from refflow.pipeline import outbox


@pytest.fixture
def refflow(settings):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFFLOW_")}
    env.update(REFFLOW_DATA_DIR=str(settings.data_dir), REFFLOW_SECRET_KEY="x")
    if settings.database_url:
        env.update(REFFLOW_DATABASE_URL=settings.database_url,
                   REFFLOW_DATABASE_SCHEMA=settings.database_schema)

    def run(*args, cwd=None):
        return subprocess.run([sys.executable, "-m", "refflow", *args], env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=120)

    return run


def test_fax_receive_stores_a_fax_once_and_prints_its_id(refflow, db, tmp_path, fax_document,
                                                         make_practice):
    practice_id, _ = make_practice("Lakeside Family Medicine", fax="+1 763 555 0142")
    recvq = tmp_path / "recvq"
    recvq.mkdir()
    (recvq / "fax000000007.tif").write_bytes(fax_document("Referral", pages=2))

    out = refflow("fax", "receive", "recvq/fax000000007.tif", "--from", "7635550142",
                  "--to", "7635550101", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    first = json.loads(out.stdout)
    assert first["created"] is True and set(first) == {"id", "created"}

    again = refflow("fax", "receive", str(recvq / "fax000000007.tif"))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == (f"fax {first['id']} was already in the inbox "
                                    "(the same fax again)")
    with db.session() as session:
        rows = session.scalars(select(ReceivedFax)).all()
        assert [(r.id, r.source, r.source_ref, r.pages, r.from_number, r.to_number,
                 r.practice_id, r.status) for r in rows] == [
            (first["id"], "cli", "fax000000007.tif", 2, "+17635550142", "+17635550101",
             practice_id, "received")]
        # waiting for the scheduler's relay to hand it to a worker
        assert session.scalars(select(OutboxMessage.args).where(
            OutboxMessage.task == outbox.READ_FAX)).all() == [{"fax_id": first["id"]}]
    for stream in (out.stdout, out.stderr, again.stdout, again.stderr):
        # the numbers in any form (not bare "555": the printed fax id is random)
        for form in ("7635550142", "555 0142", "555-0142", "5550101", "555 0101", "555-0101"):
            assert form not in stream


def test_a_pdf_is_received_too_and_the_plain_answer_says_new(refflow, db, tmp_path,
                                                              fax_document):
    path = tmp_path / "from-provider.pdf"
    path.write_bytes(fax_document("Referral", kind="pdf"))
    out = refflow("fax", "receive", str(path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("fax ") and out.stdout.strip().endswith("received (new)")
    with db.session() as session:
        assert session.scalar(select(ReceivedFax.content_type)) == "application/pdf"


def test_what_is_not_a_fax_is_one_line_exit_2(refflow, db, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("Ann Lee, born 1951-03-02: please see her.\n")
    cases = {
        str(junk): "must be a TIFF or a PDF",
        str(tmp_path / "missing.tif"): "cannot read",
        str(tmp_path): "cannot read",  # a directory
    }
    for path, message in cases.items():
        out = refflow("fax", "receive", path)
        assert out.returncode == 2, (path, out)
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("refflow: error:")
        assert message in out.stderr and "Traceback" not in out.stderr
        assert "Ann Lee" not in out.stderr and not out.stdout
    usage = refflow("fax", "receive")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    with db.session() as session:
        assert session.scalars(select(ReceivedFax.id)).all() == []


def test_fax_is_listed_in_the_help(refflow):
    out = refflow("--help")
    assert out.returncode == 0 and "fax" in out.stdout
    out = refflow("fax", "receive", "--help")
    assert out.returncode == 0 and "--from" in out.stdout and "--to" in out.stdout
