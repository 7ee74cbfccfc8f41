"""``refflow scheduler``: the loop that turns new timeline events into webhook
messages and relays the outbox to the broker (every ``relay_interval_seconds``),
re-drives stuck work and webhook messages (every 5 s), fetches received faxes
when ``fax_inbox_poll`` is on (every ``fax_inbox_poll_seconds``), evaluates
the alert conditions (``ops.alerts``, every ``alert_check_seconds``), and expires
idempotency keys, old outbox rows, received faxes and the documents of closed
referrals past their retention (hourly). Several schedulers may run at once:
the relay locks the rows it publishes, the webhook fan-out its cursor.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from refflow.config import Settings
from refflow.faxin import inbox
from refflow.faxin.poll import InboxPoller
from refflow.interop import webhooks
from refflow.ops import alerts
from refflow.pipeline import outbox, redrive, stored_documents
from refflow.pipeline.context import Pipeline
from refflow.workers.celery_app import create_celery
from refflow.workers.publisher import celery_publisher

log = logging.getLogger("refflow.scheduler")

REDRIVE_EVERY = 5.0
HOUSEKEEPING_EVERY = 3600.0


def run_scheduler(settings: Settings, stop: threading.Event) -> None:
    app = create_celery(settings)
    pipeline = Pipeline(settings, publish=celery_publisher(app))
    stuck_after = dt.timedelta(seconds=settings.stuck_after_seconds)
    # A sending worker renews its claim every third of the lease (flow._claim_kept).
    lease = dt.timedelta(seconds=settings.delivery_lease_seconds)
    redrive_every = min(REDRIVE_EVERY, max(1.0, settings.stuck_after_seconds / 2),
                        settings.delivery_lease_seconds / 3)
    next_redrive = time.monotonic() + redrive_every
    next_housekeeping = time.monotonic()
    next_fan_out = 0.0
    fax_poller = InboxPoller(pipeline) if settings.fax_inbox_poll else None
    alert_sweep = alerts.Sweep(pipeline)
    log.info("scheduler started (relay every %.2f s)", settings.relay_interval_seconds)
    while not stop.is_set():
        try:
            if time.monotonic() >= next_fan_out:
                try:  # new timeline events → webhook messages
                    webhooks.fan_out(pipeline)
                except Exception as exc:  # noqa: BLE001 - webhooks never hold up the relay
                    log.warning("webhook fan-out failed (%s); trying again in %.0f s",
                                type(exc).__name__, REDRIVE_EVERY)
                    next_fan_out = time.monotonic() + REDRIVE_EVERY
            sent = pipeline.relay()
            now = time.monotonic()
            if now >= next_redrive:
                redrive.redrive(pipeline, stuck_after=stuck_after, lease=lease)
                next_redrive = now + redrive_every
                try:
                    webhooks.redrive(pipeline, stuck_after=stuck_after, lease=lease)
                except Exception as exc:  # noqa: BLE001 - as the fan-out
                    log.warning("webhook re-drive failed (%s)", type(exc).__name__)
            if fax_poller is not None:
                fax_poller.run_if_due(now)
            alert_sweep.run_if_due(now)
            if now >= next_housekeeping:
                expired = redrive.expire_idempotency_keys(pipeline)
                pruned = outbox.prune(pipeline.db)
                purged = inbox.purge(pipeline)
                documents = stored_documents.purge_expired(pipeline)
                log.info("housekeeping: %d idempotency keys expired, %d outbox rows pruned, "
                         "%d received faxes purged, %d documents purged", expired, pruned,
                         purged, documents)
                next_housekeeping = now + HOUSEKEEPING_EVERY
        except Exception as exc:  # noqa: BLE001 - the database may be away; keep going
            log.warning("scheduler round failed (%s); retrying", type(exc).__name__)
            sent = 0
            stop.wait(1.0)
        if not sent:
            stop.wait(settings.relay_interval_seconds)
    log.info("scheduler stopped")
