"""Shared fixtures: settings on a real database (SQLite file or PostgreSQL schema),
the app, practices with API keys, and a live HTTP server.

``REFFLOW_TEST_DATABASE_URL`` points at PostgreSQL (default: the local test
database). Each test session gets its own schema, so parallel runs and
xdist workers never collide.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from werkzeug.serving import make_server

from refflow.config import load_settings
from refflow.db import database_for, migrate
from refflow.db.models import Base

PG_URL = os.environ.get("REFFLOW_TEST_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_REFERRAL = ROOT / "examples" / "referrals" / "design-example.json"


def pytest_configure(config):
    sys._called_from_test = True  # plugins: tests register what they need


@pytest.fixture(scope="session")
def pg_schema():
    """A PostgreSQL schema of this test session, migrated to head once."""
    schema = f"t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    settings = load_settings({}, database_url=PG_URL, data_dir=Path("/nonexistent-unused"),
                             secret_key="test", database_schema=schema)
    migrate.upgrade(database_for(settings))
    yield schema
    database_for(settings).dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _truncate(db) -> None:
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, tmp_path):
    """Settings on a fresh database of each kind."""
    if request.param == "sqlite":
        s = load_settings({}, data_dir=tmp_path / "data", secret_key="test-secret")
        migrate.upgrade(database_for(s))
        yield s
        database_for(s).dispose()
    else:
        schema = request.getfixturevalue("pg_schema")
        s = load_settings({}, data_dir=tmp_path / "data", database_url=PG_URL,
                          secret_key="test-secret", database_schema=schema)
        _truncate(database_for(s))
        yield s


@pytest.fixture
def sqlite_settings(tmp_path):
    s = load_settings({}, data_dir=tmp_path / "data", secret_key="test-secret")
    migrate.upgrade(database_for(s))
    yield s
    database_for(s).dispose()


@pytest.fixture
def db(settings):
    return database_for(settings)


@pytest.fixture
def app(settings):
    from refflow.app import create_app

    return create_app(settings, {"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_practice(db):
    """Create a practice; returns (practice_id, api_key)."""
    from refflow.accounts.practices import create_practice, issue_key

    def make(name: str | None = None, fax: str = "+1 763 555 0198"):
        with db.session() as session:
            practice = create_practice(session, name or f"Practice {uuid.uuid4().hex[:6]}",
                                       fax=fax, email="office@example.org")
            _, key = issue_key(session, practice)
            return practice.id, key

    return make


@pytest.fixture
def practice(make_practice):
    return make_practice("North Family Medicine")


@pytest.fixture
def auth(practice):
    return {"Authorization": f"Bearer {practice[1]}"}


@pytest.fixture
def referral_body():
    import json

    return json.loads(EXAMPLE_REFERRAL.read_text())


@pytest.fixture
def live_server(app):
    """The app served over real HTTP in a thread (threaded WSGI server)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture
def fax_document():
    """A received fax as a fax server stores it: ``make(text, pages=1)`` is a
    TIFF Class F rendered by refflow's own fax renderer; ``kind="pdf"`` is the
    PDF a provider might send instead. Different text, different fax."""

    def make(text: str = "Referral for physical therapy", *, pages: int = 1,
             kind: str = "tiff") -> bytes:
        import io

        from reportlab.pdfgen import canvas

        from refflow.documents.fax import pdf_to_fax_tiff

        buf = io.BytesIO()
        pdf = canvas.Canvas(buf)
        for number in range(1, pages + 1):
            pdf.setFont("Helvetica", 16)
            pdf.drawString(72, 720, text)
            pdf.drawString(72, 690, f"Page {number} of {pages}")
            pdf.showPage()
        pdf.save()
        return buf.getvalue() if kind == "pdf" else pdf_to_fax_tiff(buf.getvalue())

    return make


@pytest.fixture
def faxed_form():
    """refflow's referral form filled in and faxed (``bench/faxed_forms.py``):
    ``make(seed=3, practice_id=None, **options)`` is a TIFF Class F whose
    barcode names ``practice_id``; ``make.values(seed)`` are the values it holds."""
    bench = str(ROOT / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    import faxed_forms

    def make(seed: int = 3, *, practice_id: str | None = None, **options) -> bytes:
        return faxed_forms.faxed_form(faxed_forms.sample_values(seed, full=True),
                                      practice_id=practice_id, **options)

    make.values = lambda seed=3: faxed_forms.sample_values(seed, full=True)
    return make
