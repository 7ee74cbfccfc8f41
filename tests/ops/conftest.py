"""Ops tests reuse the real-pipeline harness of tests/pipeline (test-owned Redis,
aiosmtpd SMTP server, PostgreSQL schema, worker and scheduler subprocesses)."""

from __future__ import annotations

import importlib.util
import sys
import time
import uuid
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "refflow_pipeline_harness", Path(__file__).resolve().parents[1] / "pipeline" / "conftest.py")
harness = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = harness
_spec.loader.exec_module(harness)

PG_URL = harness.PG_URL
RedisServer, SmtpSink, Stack = harness.RedisServer, harness.SmtpSink, harness.Stack
# Re-export every fixture of the pipeline harness (redis_server, smtp,
# pg_module_schema, stack, intake, ...), whatever it grows to hold.
for _name, _value in vars(harness).items():
    if hasattr(_value, "_fixture_function_marker") or type(_value).__name__ == "FixtureFunctionDefinition":
        globals().setdefault(_name, _value)


def staff_cookie(app, db, role: str = "staff") -> tuple[str, str]:
    """A signed session cookie of a new staff user (as the sign-in page would
    set) and the CSRF token its API calls send in ``X-CSRFToken``."""
    import hashlib
    import os

    from itsdangerous import URLSafeTimedSerializer

    from refflow.db.models import User

    with db.session() as session:
        user = User(email=f"staff-{uuid.uuid4().hex[:8]}@example.org", password_hash="x",
                    role=role, active=True)
        session.add(user)
        session.flush()
        user_id = user.id
    now = int(time.time())
    raw_token = hashlib.sha1(os.urandom(64)).hexdigest()  # as Flask-WTF makes it
    serializer = app.session_interface.get_signing_serializer(app)
    cookie = serializer.dumps({"user_id": user_id, "seen": now, "since": now,
                               "csrf_token": raw_token})
    token = URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps(raw_token)
    return cookie, token


@pytest.fixture(scope="session")
def make_staff_cookie():
    return staff_cookie


@pytest.fixture(scope="session")
def pg_url():
    return PG_URL
