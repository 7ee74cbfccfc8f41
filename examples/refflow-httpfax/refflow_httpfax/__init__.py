"""Example refflow plugin: a fax transport that posts faxes to an HTTP fax provider
and takes the faxes the provider received through its webhook.

refflow's ``fax`` channel validates the number, checks the TIFF and picks the
transport named by ``REFFLOW_FAX_TRANSPORT``; set it to ``httpfax`` and this
module does the rest. Configuration comes from the environment:
``REFFLOW_HTTPFAX_URL`` (required), ``REFFLOW_HTTPFAX_TOKEN``,
``REFFLOW_HTTPFAX_TIMEOUT`` (seconds, default 20).

Received faxes: the provider posts each one to refflow's
``POST /api/v1/fax/inbound/httpfax``, signed with the token
(:meth:`HttpFaxTransport.parse_inbound`; see the README).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping

from refflow.plugins import hookimpl
from refflow.plugins.channels.base import (
    ChannelError,
    PermanentChannelError,
    SendResult,
    TransientChannelError,
    safe_id,
)
from refflow.plugins.channels.fax import FaxJob, FaxTransport, normalize_fax_number
from refflow.plugins.channels.fax.transports import INBOUND, InboundFax

__version__ = "0.2.0"

SIGNATURE_HEADER = "X-Httpfax-Signature"  # "sha256=<hex HMAC-SHA256 of the body, keyed by the token>"


def error_for_status(status: int) -> ChannelError:
    """The one place an HTTP status becomes a transient or permanent error."""
    if status in (408, 409, 425, 429) or status >= 500:  # 409: still busy with this key
        return TransientChannelError(f"fax provider answered HTTP {status} (temporary)")
    return PermanentChannelError(f"fax provider refused the fax (HTTP {status})")


def signature(token: str, body: bytes) -> str:
    """The value of ``X-Httpfax-Signature`` for ``body``: what the provider sends."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


class HttpFaxTransport(FaxTransport):
    name = "httpfax"
    supports = frozenset({INBOUND})

    def __init__(self, url: str, token: str = "", timeout: float = 20.0) -> None:
        self.url, self.token, self.timeout = url, token, timeout

    def submit(self, job: FaxJob) -> SendResult:
        headers = {
            "Content-Type": "image/tiff",
            "Idempotency-Key": safe_id(job.delivery_id, "delivery id"),  # a retry is not a 2nd fax
            "X-Fax-To": normalize_fax_number(job.number),  # a header: URLs end up in logs
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, job.tiff, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise error_for_status(exc.code) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            raise TransientChannelError("fax provider unreachable") from None
        try:  # the provider's job id, e.g. {"id": "job-17"}; else our delivery id
            job_id = str(json.loads(body).get("id") or job.delivery_id)
        except (ValueError, AttributeError):
            job_id = job.delivery_id
        return SendResult(reference=job_id, detail={"pages": job.pages})

    def parse_inbound(self, headers: Mapping[str, str], body: bytes) -> list[InboundFax]:
        """The provider's webhook request as the fax it received.

        The body is JSON ``{"id", "from", "to", "content"}`` (``content``: the
        TIFF or PDF in base64), signed with the token: ``X-Httpfax-Signature:
        sha256=<hex HMAC-SHA256 of the body>``. The signature is checked first,
        in constant time; an unsigned, wrongly signed or malformed request is a
        PermanentChannelError whose message holds nothing from the request."""
        if not self.token:
            raise PermanentChannelError("httpfax: no REFFLOW_HTTPFAX_TOKEN to check the "
                                        "signature with")
        sent = headers.get(SIGNATURE_HEADER) or ""
        if not hmac.compare_digest(sent.encode(), signature(self.token, body).encode()):
            raise PermanentChannelError("httpfax: missing or wrong signature")
        try:
            data = json.loads(body)
            content = base64.b64decode(data["content"], validate=True)
            reference = str(data["id"])
        except (ValueError, TypeError, KeyError, binascii.Error, RecursionError):
            raise PermanentChannelError("httpfax: the request is not a received fax "
                                        "(JSON with id and base64 content)") from None
        if not content or not reference or len(reference) > 200:
            raise PermanentChannelError("httpfax: the fax's id or content is empty or too long")
        numbers = [data.get(key) for key in ("from", "to")]
        return [InboundFax(content=content, reference=reference,
                           from_number=numbers[0] if isinstance(numbers[0], str) else None,
                           to_number=numbers[1] if isinstance(numbers[1], str) else None)]


@hookimpl
def refflow_fax_transports(settings):
    url = os.environ.get("REFFLOW_HTTPFAX_URL", "")
    if not url:
        return []  # not configured: offer no transport
    return [HttpFaxTransport(url, os.environ.get("REFFLOW_HTTPFAX_TOKEN", ""),
                             float(os.environ.get("REFFLOW_HTTPFAX_TIMEOUT", "20")))]
