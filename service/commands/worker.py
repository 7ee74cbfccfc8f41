"""``refflow worker``: a Celery worker for the planning and delivery queues."""

from __future__ import annotations

import click

from refflow.commands.context import settings_or_exit


@click.command("worker")
@click.option("--queues", default="refflow.planning,refflow.deliveries", show_default=True,
              help="Comma-separated queues to consume (split planning and deliveries across "
                   "machines to keep a slow fax provider from holding up plans).")
@click.option("--concurrency", "-c", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--loglevel", default="INFO", show_default=True)
def command(queues: str, concurrency: int, loglevel: str) -> None:
    """Run a worker (same as `celery -A refflow.workers worker`)."""
    settings_or_exit()
    from refflow.workers import app

    app.worker_main(["worker", "--queues", queues, "--concurrency", str(concurrency),
                     "--loglevel", loglevel, "--pool", "prefork", "--without-gossip",
                     "--without-mingle", "--hostname", "refflow@%h"])
