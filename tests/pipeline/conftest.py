"""A real pipeline for the tests: a test-owned Redis server, a real SMTP server
(aiosmtpd), a PostgreSQL schema, and `refflow worker` / `refflow scheduler`
running as subprocesses, exactly as production runs them."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, select, text

from refflow import embedded
from refflow.config import load_settings
from refflow.db import database_for, migrate
from refflow.db.models import Delivery, Referral

PG_URL = os.environ.get("REFFLOW_TEST_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class RedisServer:
    """A Redis server this test module owns, so it may stop and start it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = embedded.free_port()
        self.proc = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc, _ = embedded.start_redis(self.data_dir, port=self.port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@dataclass
class SmtpSink:
    """Collects what a real SMTP server received; ``delay`` slows each RCPT."""

    messages: list = field(default_factory=list)
    delay: float = 0.0
    fail_next: list = field(default_factory=list)  # SMTP replies to give before accepting
    down: bool = False  # answer every recipient "421 try later" (a mail server that is away)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        with self.lock:
            if self.down:
                return "421 4.3.2 Service not available, try again later"
            if self.fail_next:
                return self.fail_next.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"

    def for_delivery(self, delivery_id: str) -> list:
        with self.lock:
            return [m for m in self.messages if delivery_id in (m["Message-ID"] or "")]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smtp():
    sink = SmtpSink()
    port = embedded.free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    sink.port = port
    yield sink
    controller.stop()


@pytest.fixture(scope="module")
def pg_module_schema():
    schema = f"p_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield schema
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


class Stack:
    """Worker and scheduler subprocesses on one database, broker and SMTP server."""

    def __init__(self, settings, env: dict) -> None:
        self.settings = settings
        self.env = env
        self.db = database_for(settings)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.settings.data_dir / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "refflow", *args], env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_worker(self, name: str = "worker", concurrency: int = 2):
        return self.start(name, "worker", "--concurrency", str(concurrency),
                          "--loglevel", "WARNING")

    def start_scheduler(self):
        return self.start("scheduler", "scheduler")

    def kill(self, name: str, sig: int) -> None:
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(30)

    def stop_all(self) -> None:
        import signal

        for name in list(self.procs):
            proc = self.procs[name]
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.procs.pop(name, None)

    def wait_for(self, referral_ids, statuses=("completed",), timeout: float = 60.0) -> dict:
        """Wait until every referral has one of ``statuses``; returns id → status."""
        deadline = time.monotonic() + timeout
        while True:
            with self.db.session() as session:
                found = dict(session.execute(select(Referral.id, Referral.status)
                                             .where(Referral.id.in_(list(referral_ids)))).all())
            if len(found) == len(referral_ids) and all(s in statuses for s in found.values()):
                return found
            if time.monotonic() > deadline:
                logs = {n: (self.settings.data_dir / f"{n}.log").read_text(errors="replace")[-3000:]
                        for n in ("worker", "scheduler") if
                        (self.settings.data_dir / f"{n}.log").exists()}
                raise AssertionError(f"timed out: {found}\n{logs}")
            time.sleep(0.1)

    def deliveries(self, referral_id: str) -> list[Delivery]:
        with self.db.session() as session:
            return session.scalars(select(Delivery).where(
                Delivery.referral_id == referral_id).order_by(Delivery.channel)).all()


@pytest.fixture(scope="module")
def stack_env() -> dict:
    """Extra environment for this module's worker and scheduler (override per module)."""
    return {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_server, smtp, pg_module_schema, stack_env):
    data_dir = tmp_path_factory.mktemp("data")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REFFLOW_")},
        "REFFLOW_DATA_DIR": str(data_dir),
        "REFFLOW_DATABASE_URL": PG_URL,
        "REFFLOW_DATABASE_SCHEMA": pg_module_schema,
        "REFFLOW_BROKER_URL": redis_server.url,
        "REFFLOW_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        "REFFLOW_SECRET_KEY": "pipeline-test",
        "REFFLOW_RETRY_BASE_SECONDS": "0.2",
        "REFFLOW_RETRY_MAX_SECONDS": "1",
        "REFFLOW_STUCK_AFTER_SECONDS": "4",
        "REFFLOW_TASK_TIME_LIMIT": "8",
        **stack_env,
    }
    settings = load_settings(env)
    migrate.upgrade(database_for(settings))
    s = Stack(settings, env)
    s.start_worker()
    s.start_scheduler()
    yield s
    s.stop_all()
    database_for(settings).dispose()


@pytest.fixture
def intake(stack):
    """A test client of the web app on the stack's database, and a fresh practice."""
    from refflow.accounts.practices import create_practice, issue_key
    from refflow.app import create_app

    app = create_app(stack.settings, {"TESTING": True})
    with stack.db.session() as session:
        practice = create_practice(session, f"Practice {uuid.uuid4().hex[:8]}",
                                   fax="+1 763 555 0198")
        _, key = issue_key(session, practice)
    client = app.test_client()
    client.auth = {"Authorization": f"Bearer {key}"}
    return client
