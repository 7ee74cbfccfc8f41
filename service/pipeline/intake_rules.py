"""The intake's plugin rules: ``refflow_validate_referral`` as the intake's problem finder."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from refflow.config import Settings


def problem_finder(settings: Settings):
    """The intake's ``find_problems``: every ``refflow_validate_referral`` answer."""
    from refflow.plugins.manager import get_plugin_manager, validate_referral

    pm = get_plugin_manager(settings)
    zone = ZoneInfo(settings.clinic_timezone)

    def find(referral):
        return validate_referral(referral, pm, as_of=dt.datetime.now(zone).date())

    return find
