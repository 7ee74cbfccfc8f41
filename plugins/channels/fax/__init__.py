"""The ``fax`` channel: sends a delivery's fax image (``fax.tiff``, or the "not
accepted" letter's ``decline.tiff``) through the configured fax transport.

The channel validates the number (E.164, ``refflow.intake.contact``), checks the
image is a readable TIFF and counts its pages, then hands a
:class:`~refflow.plugins.channels.fax.transports.FaxJob` to the transport
named by ``REFFLOW_FAX_TRANSPORT`` (transports are plugins too:
``refflow_fax_transports``). Built in: ``spool`` (a folder a fax gateway
watches) and ``hylafax`` (HylaFAX's client protocol to ``hfaxd``).

A transport that follows its jobs (``"status"`` in its ``supports``) only
queues the fax in ``send``: the delivery stays ``sending`` and the pipeline
calls :meth:`FaxChannel.check` until the fax server says it was sent (the
server's confirmation: pages, call time, remote id) or failed (its reason,
transient or permanent). :meth:`FaxChannel.cancel` kills a queued job.
"""

from __future__ import annotations

import io

from refflow.intake.contact import DEFAULT_PHONE_REGION, normalize_fax
from refflow.plugins import hookimpl
from refflow.plugins.channels.base import (
    Channel,
    Delivery,
    PermanentChannelError,
    SendResult,
    safe_id,
)
from refflow.plugins.channels.fax.hylafax import HylafaxTransport
from refflow.plugins.channels.fax.spool import SpoolTransport
from refflow.plugins.channels.fax.transports import CANCEL, STATUS, FaxJob, FaxStatus, FaxTransport

DOCUMENT = "fax.tiff"

__all__ = ["FaxChannel", "FaxJob", "FaxStatus", "FaxTransport", "HylafaxTransport",
           "SpoolTransport", "normalize_fax_number"]


def normalize_fax_number(value: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """The number in E.164, or :class:`PermanentChannelError` (message without
    the number) when it is not a number a fax may be sent to
    (``refflow.intake.contact.normalize_fax``: no premium rate, pager, ...)."""
    try:
        return normalize_fax(value, region)
    except ValueError as exc:
        raise PermanentChannelError(f"fax target is {exc}") from None


def count_tiff_pages(data: bytes) -> int:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "TIFF":
                raise PermanentChannelError("the fax document is not a TIFF image")
            return getattr(image, "n_frames", 1)
    except (UnidentifiedImageError, OSError, ValueError):
        raise PermanentChannelError("the fax document is not a readable TIFF image") from None


class FaxChannel(Channel):
    name = "fax"
    documents = ()
    idempotent = True  # transports are idempotent per delivery id (one job per id)

    def __init__(self, settings, transport: FaxTransport | None = None, pm=None) -> None:
        self.settings = settings
        self._transport = transport
        self._pm = pm

    @property
    def transport(self) -> FaxTransport:
        if self._transport is None:
            from refflow.plugins.manager import fax_transports, get_plugin_manager

            pm = self._pm or get_plugin_manager(self.settings)
            available = fax_transports(pm, self.settings)
            wanted = self.settings.fax_transport
            if wanted not in available:
                raise PermanentChannelError(
                    f"fax transport {wanted!r} is not installed (REFFLOW_FAX_TRANSPORT); "
                    f"available: {', '.join(sorted(available)) or 'none'}"
                )
            self._transport = available[wanted]
        return self._transport

    def validate_target(self, target: str) -> str:
        return normalize_fax_number(target)

    def send(self, delivery: Delivery) -> SendResult:
        safe_id(delivery.id, "delivery id")
        number = self.validate_target(delivery.target)
        tiff = delivery.document(delivery.document_name or DOCUMENT)
        job = FaxJob(
            delivery_id=delivery.id,
            referral_id=delivery.referral_id,
            number=number,
            tiff=tiff,
            pages=count_tiff_pages(tiff),
            attempt=delivery.attempt,
        )
        result = self.transport.submit(job)
        if result.held and STATUS not in self.transport.supports:
            raise PermanentChannelError(
                f"fax transport {self.transport.name!r} held a job it cannot follow "
                "(it does not support 'status')")
        return result

    def check(self, reference: str) -> FaxStatus:
        """Where the fax server has got with a job ``send`` queued."""
        return self.transport.status(reference)

    def can_cancel(self) -> bool:
        return CANCEL in self.transport.supports

    def cancel(self, reference: str) -> None:
        """Kill a queued job (a cancelled referral's fax)."""
        self.transport.cancel(reference)


@hookimpl
def refflow_output_channels(settings):
    return [FaxChannel(settings)]


@hookimpl
def refflow_fax_transports(settings):
    return [SpoolTransport(settings.fax_spool_dir), HylafaxTransport.from_settings(settings)]
