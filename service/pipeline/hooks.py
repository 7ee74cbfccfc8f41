"""Wiring the pipeline's events to the plugins: intake problems and status hooks."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from refflow.config import Settings
from refflow.referrals import states


def install_status_hook(settings: Settings) -> None:
    """Call ``refflow_referral_status_changed`` after every committed status
    change; a plugin that raises is recorded on the referral's timeline (its
    name and error class), in a transaction of its own: the change stands."""
    from refflow.db import database_for
    from refflow.plugins.manager import get_plugin_manager, notify_status_changed

    pm = get_plugin_manager(settings)

    def notify(referral_id: str, old: str, new: str) -> None:
        failures = notify_status_changed(referral_id, old, new, pm)
        if failures:
            with database_for(settings).session() as session:
                for failure in failures:
                    states.record_event(session, referral_id, "plugin_failed",
                                        actor="plugins", reason=failure.message)

    states.on_status_changed("plugins", notify)


def problem_finder(settings: Settings):
    """The intake's ``find_problems``: every ``refflow_validate_referral`` answer."""
    from refflow.plugins.manager import get_plugin_manager, validate_referral

    pm = get_plugin_manager(settings)
    zone = ZoneInfo(settings.clinic_timezone)

    def find(referral):
        return validate_referral(referral, pm, as_of=dt.datetime.now(zone).date())

    return find
