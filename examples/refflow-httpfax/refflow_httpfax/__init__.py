"""Example refflow plugin: an HTTP fax channel and a clinic plan rule.

Everything a plugin needs comes from two imports: ``hookimpl`` to mark hook
implementations and the channel contract from ``refflow.plugins.channels.base``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import urllib.error
import urllib.request

import phonenumbers

from refflow.plugins import hookimpl
from refflow.plugins.channels.base import (
    Channel,
    ChannelError,
    Delivery,
    PermanentChannelError,
    SendResult,
    TransientChannelError,
    safe_id,
)

__version__ = "0.1.0"
PLUGIN = "httpfax"
OLDEST_FOR_HOME_START = 85


# -- the channel ---------------------------------------------------------------


def error_for_status(status: int) -> ChannelError:
    """The one place an HTTP status becomes a transient or permanent error."""
    if status in (408, 409, 425, 429) or status >= 500:
        # 409: the provider is still working on a request with this key.
        return TransientChannelError(f"fax provider answered HTTP {status} (temporary)")
    return PermanentChannelError(f"fax provider refused the fax (HTTP {status})")


class HttpFaxChannel(Channel):
    name = "httpfax"
    documents = ("fax.tiff",)

    def __init__(self, url: str, token: str | None = None, timeout: float = 20.0) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout

    def validate_target(self, target: str) -> str:
        try:
            number = phonenumbers.parse(target or "", "US")
        except phonenumbers.NumberParseException:
            raise PermanentChannelError("fax target is not a phone number") from None
        if not phonenumbers.is_valid_number(number):
            raise PermanentChannelError("fax target is not a valid phone number")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def send(self, delivery: Delivery) -> SendResult:
        number = self.validate_target(delivery.target)
        headers = {
            "Content-Type": "image/tiff",
            "Idempotency-Key": safe_id(delivery.id, "delivery id"),
            "X-Fax-To": number,  # a header, never the URL: URLs end up in logs
            "User-Agent": f"refflow-httpfax/{__version__}",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.url, data=delivery.document("fax.tiff"), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            raise error_for_status(exc.code) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransientChannelError(
                f"fax provider unreachable ({type(reason).__name__})"
            ) from None
        if status not in (200, 201, 202):
            raise error_for_status(status)
        try:
            job = json.loads(body or b"{}").get("id") or delivery.id
        except (ValueError, AttributeError):
            job = delivery.id
        return SendResult(reference=str(job), detail={"provider_status": status})


@hookimpl
def refflow_output_channels(settings):
    url = os.environ.get("REFFLOW_HTTPFAX_URL", "")
    if not url:
        return []  # not configured: offer no channel
    return [
        HttpFaxChannel(
            url,
            token=os.environ.get("REFFLOW_HTTPFAX_TOKEN") or None,
            timeout=float(os.environ.get("REFFLOW_HTTPFAX_TIMEOUT", "20")),
        )
    ]


# -- the clinic rule -----------------------------------------------------------


@hookimpl
def refflow_adjust_plan(referral, plan):
    """Patients aged 85+ start with one supervised session in the clinic."""
    as_of = plan.get("as_of") or plan.get("referral_date")
    day = dt.date.fromisoformat(str(as_of)[:10]) if as_of else dt.date.today()
    if referral.age_on(day) < OLDEST_FOR_HOME_START:
        return None
    plan = copy.deepcopy(plan)
    plan.setdefault("flags", []).append({
        "code": "in_clinic_first_visit",
        "severity": "caution",
        "message": "Book the first session in the clinic (patient aged 85 or older) "
        "before the home programme starts.",
        "source": PLUGIN,
    })
    plan.setdefault("precautions", []).append(
        "Your first exercise session will be at the clinic with a therapist."
    )
    return plan


# -- routing -------------------------------------------------------------------


@hookimpl
def refflow_route_deliveries(referral, plan):
    """Send the referrer's fax through the HTTP provider when one is configured.

    Returning ``None`` leaves the decision to the next plugin or the default.
    """
    if not os.environ.get("REFFLOW_HTTPFAX_URL") or not referral.referrer.fax:
        return None
    from refflow.plugins.manager import default_routes

    return [
        {**route, "channel": PLUGIN} if route["channel"] == "fax" else route
        for route in default_routes(referral)
    ]
