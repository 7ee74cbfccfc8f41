"""``refflow scheduler``: outbox relay, re-drive of stuck work, housekeeping."""

from __future__ import annotations

import signal
import threading

import click

from refflow.commands.context import settings_or_exit


@click.command("scheduler")
def command() -> None:
    """Relay the outbox to the broker and re-drive stuck referrals (runs until stopped)."""
    settings = settings_or_exit(create_data_dir=True)
    from refflow.ops.logging import configure_logging
    from refflow.workers.schedule import run_scheduler

    configure_logging(settings.log_level)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_scheduler(settings, stop)
