"""Example refflow plugin: a fax transport that posts faxes to an HTTP fax provider.

refflow's ``fax`` channel validates the number, checks the TIFF and picks the
transport named by ``REFFLOW_FAX_TRANSPORT``; set it to ``httpfax`` and this
module does the rest. Configuration comes from the environment:
``REFFLOW_HTTPFAX_URL`` (required), ``REFFLOW_HTTPFAX_TOKEN``,
``REFFLOW_HTTPFAX_TIMEOUT`` (seconds, default 20).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from refflow.plugins import hookimpl
from refflow.plugins.channels.base import (
    ChannelError,
    PermanentChannelError,
    SendResult,
    TransientChannelError,
    safe_id,
)
from refflow.plugins.channels.fax import FaxJob, FaxTransport, normalize_fax_number

__version__ = "0.2.0"


def error_for_status(status: int) -> ChannelError:
    """The one place an HTTP status becomes a transient or permanent error."""
    if status in (408, 409, 425, 429) or status >= 500:  # 409: still busy with this key
        return TransientChannelError(f"fax provider answered HTTP {status} (temporary)")
    return PermanentChannelError(f"fax provider refused the fax (HTTP {status})")


class HttpFaxTransport(FaxTransport):
    name = "httpfax"

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


@hookimpl
def refflow_fax_transports(settings):
    url = os.environ.get("REFFLOW_HTTPFAX_URL", "")
    if not url:
        return []  # not configured: offer no transport
    return [HttpFaxTransport(url, os.environ.get("REFFLOW_HTTPFAX_TOKEN", ""),
                             float(os.environ.get("REFFLOW_HTTPFAX_TIMEOUT", "20")))]
