"""Wiring the pipeline's events to the plugins: intake problems and status hooks."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from refflow.config import Settings
from refflow.referrals import states


def install_status_hook(settings: Settings) -> None:
    """Call ``refflow_referral_status_changed`` after every committed status change."""
    from refflow.plugins.manager import get_plugin_manager, notify_status_changed

    pm = get_plugin_manager(settings)
    states.on_status_changed(
        "plugins", lambda rid, old, new: notify_status_changed(rid, old, new, pm))


def problem_finder(settings: Settings):
    """The intake's ``find_problems``: every ``refflow_validate_referral`` answer."""
    from refflow.plugins.manager import get_plugin_manager, validate_referral

    pm = get_plugin_manager(settings)
    zone = ZoneInfo(settings.clinic_timezone)

    def find(referral):
        return validate_referral(referral, pm, as_of=dt.datetime.now(zone).date())

    return find
