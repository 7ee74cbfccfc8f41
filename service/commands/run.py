"""``refflow run``: the whole service on one machine with embedded defaults."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import threading
from pathlib import Path

import click

from refflow.cli import CLIError
from refflow.commands.context import host_option, port_option, settings_or_exit
from refflow.commands.worker import default_concurrency

STAFF_EMAIL = "staff@refflow.example.org"


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
    settings = settings_or_exit()
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
        click.echo(f"refflow is running: dashboard http://{shown_host}:{port}/")
        click.echo(f"staff login: {login['email']} / {login['password']}")
        click.echo("press Ctrl+C to stop")
        supervisor.watch(stopping.is_set)
    finally:
        supervisor.stop()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
        click.echo("refflow stopped")


def _staff_login(db, data_dir: Path) -> dict:
    """The embedded staff login, created on first run and kept (mode 0600) in the data dir."""
    from refflow.accounts.users import create_user

    path = data_dir / "staff-login.json"
    if path.exists():
        return json.loads(path.read_text())
    password = secrets.token_urlsafe(12)
    with db.session() as session:
        create_user(session, STAFF_EMAIL, password, role="admin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"email": STAFF_EMAIL, "password": password}, fh)
    return {"email": STAFF_EMAIL, "password": password}
