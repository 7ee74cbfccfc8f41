"""``refflow scheduler``: outbox relay, re-drive of stuck work, housekeeping."""

from __future__ import annotations

import logging
import signal
import threading

import click

from refflow.commands.common import settings_or_exit


@click.command("scheduler")
def command() -> None:
    """Relay the outbox to the broker and re-drive stuck referrals (runs until stopped)."""
    settings = settings_or_exit()
    from refflow.workers.schedule import run_scheduler

    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_scheduler(settings, stop)
