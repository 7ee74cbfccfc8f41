"""``refflow run``: the whole service on one machine with embedded defaults."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import threading
import time
import urllib.request
from pathlib import Path

import click

from refflow.cli import CLIError
from refflow.commands.context import (
    host_option,
    port_free_or_exit,
    port_option,
    settings_or_exit,
)
from refflow.commands.worker import default_concurrency

STAFF_EMAIL = "staff@refflow.example.org"
READY_TIMEOUT = 120.0  # seconds the banner waits for the web server (a slow first start)


@click.command("run")
@host_option
@port_option
@click.option("--worker-concurrency", type=click.IntRange(1, 16), default=None,
              help="The worker's pool processes [default: the machine's cores + 1].")
def command(host: str, port: int, worker_concurrency: int) -> None:
    """Run web server, worker and scheduler together (SQLite and an embedded
    Redis unless REFFLOW_DATABASE_URL / REFFLOW_BROKER_URL are set)."""
    from refflow import embedded
    from refflow.db import database_for, migrate

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_or_exit(create_data_dir=True)
    port_free_or_exit(host, port)
    data_dir = settings.data_dir.resolve()
    env = dict(os.environ, REFFLOW_DATA_DIR=str(data_dir), REFFLOW_SECRET_KEY=settings.secret_key)
    redis_proc = None
    if not settings.broker_url:
        try:
            redis_proc, url = embedded.start_redis(data_dir / "redis")
        except (RuntimeError, OSError) as exc:
            raise CLIError(f"could not start the embedded Redis: {exc}") from None
        env["REFFLOW_BROKER_URL"] = url
        click.echo(f"embedded Redis at {url}")

    db = database_for(settings)
    migrate.upgrade(db)
    login = _staff_login(db, data_dir)

    supervisor = embedded.Supervisor(env)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        supervisor.start("web", "web", "--host", host, "--port", str(port), "--workers", "1")
        supervisor.start("worker", "worker", "--concurrency",
                         str(worker_concurrency or default_concurrency()),
                         "--loglevel", "WARNING")
        supervisor.start("scheduler", "scheduler")
        shown_host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
        if not _wait_until_ready(f"http://{shown_host}:{port}/readyz", stopping.is_set):
            click.echo("the web server is not ready yet: see its log above")
        click.echo(f"refflow is running: dashboard http://{shown_host}:{port}/")
        click.echo(_login_line(login))
        click.echo(f"data in {data_dir}: emails in {settings.mail_outbox_dir.name}/, "
                   f"faxes in {settings.fax_spool_dir.name}/, chart PDFs in "
                   f"{settings.documents_dir.name}/chart/")
        click.echo("press Ctrl+C to stop")
        supervisor.watch(stopping.is_set)
    finally:
        supervisor.stop()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
        click.echo("refflow stopped")


def _wait_until_ready(url: str, stopping, timeout: float = READY_TIMEOUT) -> bool:
    """Wait for the web server's /readyz to answer 200, so that the banner is
    printed when a request would be served."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping():
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:  # not listening yet, or 503 while it starts
            pass
        time.sleep(0.2)
    return False


def _staff_login(db, data_dir: Path) -> dict:
    """The embedded staff login, created on first run and kept (mode 0600) in the data dir.

    Only a login that works is returned with its ``password``. When the user
    exists in the database but the data dir holds no working password for it
    (another data dir on a shared database, a deleted file, a changed
    password), ``password`` is None. When the file names a user the database
    no longer has, the user is created again with a new password.
    """
    from sqlalchemy import func, select

    from refflow.accounts.practices import AccountError
    from refflow.accounts.users import create_user, verify_login
    from refflow.db.models import User

    path = data_dir / "staff-login.json"
    try:
        saved = json.loads(path.read_text())
        email, password = str(saved["email"]), str(saved["password"])
    except (OSError, ValueError, KeyError, TypeError):
        email, password = STAFF_EMAIL, None
    try:
        with db.session() as session:
            if password is not None and verify_login(session, email, password) is not None:
                return {"email": email, "password": password}
            if session.scalar(select(User.id).where(func.lower(User.email) == email.lower())):
                return {"email": email, "password": None}
            password = secrets.token_urlsafe(12)
            create_user(session, email, password, role="admin")
    except AccountError:  # another `refflow run` on this database created it just now
        return {"email": email, "password": None}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"email": email, "password": password}, fh)
    os.replace(tmp, path)
    return {"email": email, "password": password}


def _login_line(login: dict) -> str:
    if login["password"] is not None:
        return f"staff login: {login['email']} / {login['password']}"
    return (f"staff login: {login['email']} exists already in this database and its password "
            "is not in this data dir; to sign in, add a user of your own: "
            "refflow user add EMAIL --role admin")
