"""Fixtures for the plugin and channel tests: settings in tmp_path, a real
SMTP server (aiosmtpd) with a throwaway CA, real PDF and TIFF documents.

Every server binds to a free port found by binding port 0, every file goes
under tmp_path: the tests run in parallel (xdist) without colliding.
"""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import pytest

from refflow.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_REFERRAL = ROOT / "examples" / "referrals" / "design-example.json"


@pytest.fixture
def plugin_settings(tmp_path):
    return load_settings(
        {},
        data_dir=tmp_path / "data",
        smtp_from="Clinic <refflow@clinic.example>",
        clinic_name="Lakeside Rehab",
        clinic_phone="+1 763 555 0100",
        smtp_timeout=5.0,
    )


@pytest.fixture
def referral_data():
    return json.loads(EXAMPLE_REFERRAL.read_text())


@pytest.fixture
def referral(referral_data):
    from refflow.intake.schemas import Referral

    return Referral.model_validate(referral_data)


@pytest.fixture
def helpers():
    """Plain helper functions (importlib import mode: test modules can't import conftest)."""

    class Helpers:
        pass

    h = Helpers()
    h.free_port, h.small_pdf, h.fax_tiff = free_port, small_pdf, fax_tiff
    return h


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- documents ----------------------------------------------------------------


def small_pdf(text: str = "Exercise plan") -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(72, 720, text)
    c.showPage()
    c.save()
    return buf.getvalue()


def fax_tiff(pages: int = 2) -> bytes:
    from PIL import Image

    images = [Image.new("1", (1728, 2200), 1) for _ in range(pages)]
    buf = io.BytesIO()
    images[0].save(buf, format="TIFF", compression="group3", dpi=(204, 196),
                   save_all=True, append_images=images[1:])
    return buf.getvalue()


@pytest.fixture(scope="session")
def handout_pdf(tmp_path_factory) -> bytes:
    """The real patient handout (plan engine + renderer) when both are importable, else a
    small ReportLab PDF: the email tests need a real PDF, not this particular one."""
    import datetime as dt

    try:
        from refflow.documents.clinic import ClinicInfo
        from refflow.documents.handout import render_handout
        from refflow.intake.schemas import Referral
        from refflow.planning.engine import build_plan
    except ImportError:
        return small_pdf()
    referral = Referral.model_validate(json.loads(EXAMPLE_REFERRAL.read_text()))
    settings = load_settings({}, data_dir=tmp_path_factory.mktemp("handout"))
    plan = build_plan(referral, as_of=dt.date(2026, 6, 1))
    pdf = render_handout(referral, plan, ClinicInfo.from_settings(settings))
    assert pdf.startswith(b"%PDF")
    return pdf


# -- TLS ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory):
    """A throwaway CA (trustme) and a server certificate for 127.0.0.1/localhost."""
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    directory = tmp_path_factory.mktemp("tls")
    ca_path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    return ca_path, server_context
