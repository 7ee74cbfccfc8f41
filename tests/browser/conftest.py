"""Real-browser tests: headless Debian Chromium (Playwright) against the app
served over HTTP, with a real worker and scheduler on Redis, PostgreSQL and an
SMTP server (the pipeline tests' harness, reused).

The worker also loads a tiny test plugin, installed on its PYTHONPATH as a
distribution with an entry point: a fax transport that refuses one number as
"a voice line, not a fax" (a permanent error), so a bad fax target can be
corrected from the page. Everything else about the fax goes to the spool.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import threading
import uuid
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from refflow.config import load_settings
from refflow.db import database_for, migrate

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = os.environ.get("REFFLOW_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct horse battery staple"
VOICE_LINE = "+17635550111"  # a valid number that is not a fax machine
GOOD_FAX = "+17635550198"


def _harness():
    """The pipeline tests' Redis/SMTP/Stack helpers (loaded by path, not edited)."""
    spec = importlib.util.spec_from_file_location(
        "refflow_pipeline_harness", ROOT / "tests" / "pipeline" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


harness = _harness()

PLUGIN_SOURCE = f'''
"""Test fax transport: the spool, except one number answers as a voice line."""
from refflow.plugins import hookimpl
from refflow.plugins.channels.base import PermanentChannelError
from refflow.plugins.channels.fax.spool import SpoolTransport

VOICE_LINE = "{VOICE_LINE}"


class VoiceLineAwareSpool(SpoolTransport):
    name = "browser-test-spool"

    def submit(self, job):
        if job.number == VOICE_LINE:
            raise PermanentChannelError("the number answered as a voice line, not a fax "
                                        "(no fax tone)")
        return super().submit(job)


@hookimpl
def refflow_fax_transports(settings):
    return [VoiceLineAwareSpool(settings.fax_spool_dir)]
'''


def _install_test_plugin(root: Path) -> None:
    (root / "refflow_browser_fax.py").write_text(PLUGIN_SOURCE)
    info = root / "refflow_browser_fax-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: refflow-browser-fax\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text("[refflow]\nbrowser_fax = refflow_browser_fax\n")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_server, smtp, pg_module_schema):
    data_dir = tmp_path_factory.mktemp("data")
    plugin_dir = tmp_path_factory.mktemp("plugin")
    _install_test_plugin(plugin_dir)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REFFLOW_")},
        "REFFLOW_DATA_DIR": str(data_dir),
        "REFFLOW_DATABASE_URL": harness.PG_URL,
        "REFFLOW_DATABASE_SCHEMA": pg_module_schema,
        "REFFLOW_BROKER_URL": redis_server.url,
        "REFFLOW_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        "REFFLOW_SECRET_KEY": "browser-test",
        "REFFLOW_RETRY_BASE_SECONDS": "0.2",
        "REFFLOW_RETRY_MAX_SECONDS": "1",
        "REFFLOW_STUCK_AFTER_SECONDS": "4",
        "REFFLOW_TASK_TIME_LIMIT": "8",
        "REFFLOW_RELAY_INTERVAL_SECONDS": "0.1",
    }
    worker_env = {**env, "PYTHONPATH": os.pathsep.join(
                      filter(None, [str(plugin_dir), os.environ.get("PYTHONPATH")])),
                  "REFFLOW_LOAD_PLUGINS": "browser_fax",
                  "REFFLOW_FAX_TRANSPORT": "browser-test-spool"}
    settings = load_settings(env)
    migrate.upgrade(database_for(settings))
    s = harness.Stack(settings, worker_env)
    s.start_worker()
    s.start_scheduler()
    yield s
    s.stop_all()
    database_for(settings).dispose()


# The pipeline harness's own fixtures: a test-owned Redis, an SMTP sink and a
# PostgreSQL schema per module.
redis_server = harness.redis_server
smtp = harness.smtp
pg_module_schema = harness.pg_module_schema


class Site:
    """The served app, its people and practices."""

    def __init__(self, url: str, stack) -> None:
        self.url = url
        self.stack = stack
        self.practices: dict[str, dict] = {}
        self.staff_email = ""

    def practice_user(self, key: str) -> str:
        return self.practices[key]["user"]

    def api_key(self, key: str) -> str:
        return self.practices[key]["api_key"]

    def submit(self, practice: str, body: dict) -> str:
        """Submit through the JSON API, as an EHR integration would."""
        import requests

        r = requests.post(f"{self.url}/api/v1/referrals", json=body, timeout=10,
                          headers={"Authorization": f"Bearer {self.api_key(practice)}"})
        assert r.status_code == 202, r.text
        return r.json()["id"]


@pytest.fixture(scope="module")
def site(stack):
    from refflow.accounts.practices import create_practice, issue_key
    from refflow.accounts.users import create_user
    from refflow.app import create_app

    app = create_app(stack.settings, {})
    s_ = None
    tag = uuid.uuid4().hex[:6]
    practices = {}
    with stack.db.session() as session:
        for key, name in (("north", "North Family Medicine"), ("lake", "Lakeside Clinic")):
            practice = create_practice(session, f"{name} {tag}", fax=GOOD_FAX,
                                       email=f"office-{key}@example.org")
            _, api_key = issue_key(session, practice)
            user = create_user(session, f"{key}-{tag}@practice.example", PASSWORD,
                               role="practice", practice=practice.name)
            practices[key] = {"id": practice.id, "api_key": api_key, "user": user.email}
        staff = create_user(session, f"staff-{tag}@clinic.example", PASSWORD, role="staff")
        staff_email = staff.email
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    s_ = Site(f"http://127.0.0.1:{server.server_port}", stack)
    s_.practices = practices
    s_.staff_email = staff_email
    yield s_
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture
def page(browser, site, request):
    """A fresh browser context (no cookies) per test; its last page is saved."""
    context = browser.new_context(base_url=site.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error"
          and not msg.text.startswith("Failed to load resource") else None)
    pg.console_errors = errors
    pg.site_password = PASSWORD
    yield pg
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    try:
        pg.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    finally:
        context.close()
