"""``refflow worker``: a Celery worker for the planning and delivery queues."""

from __future__ import annotations

import os

import click

from refflow.commands.context import settings_or_exit


def default_concurrency() -> int:
    """One pool process more than the machine has cores: tasks also wait (on
    SMTP, a fax provider, the database's commit, the next message from the
    broker), and with a process per core a core idles during every wait
    (about 13 % of two cores under a burst, against 5 % with three processes)."""
    return (os.cpu_count() or 1) + 1


@click.command("worker")
@click.option("--queues", default="refflow.planning,refflow.deliveries", show_default=True,
              help="Comma-separated queues to consume (split planning and deliveries across "
                   "machines to keep a slow fax provider from holding up plans).")
@click.option("--concurrency", "-c", type=click.IntRange(1, 64), default=None,
              help="Pool processes [default: the machine's cores + 1].")
@click.option("--loglevel", default="INFO", show_default=True)
def command(queues: str, concurrency: int, loglevel: str) -> None:
    """Run a worker (same as `celery -A refflow.workers worker`)."""
    settings_or_exit(create_data_dir=True)
    from refflow.workers import app

    concurrency = concurrency or default_concurrency()
    app.worker_main(["worker", "--queues", queues, "--concurrency", str(concurrency),
                     "--loglevel", loglevel, "--pool", "prefork", "--without-gossip",
                     "--without-mingle", "--hostname", "refflow@%h"])
