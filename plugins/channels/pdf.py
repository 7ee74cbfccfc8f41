"""The ``pdf`` channel: files the chart record PDF in the document store.

The file lands at ``<documents_dir>/chart/<referral_id>/chart-<delivery_id>.pdf``
(ids only, never PHI; a delivery of another document is named after it, e.g.
``summary-<delivery_id>.pdf`` for deliveries made before the chart record
existed), written atomically (temporary name, fsync, rename).
Sending the same delivery again leaves one file; its SHA-256 is returned in
``SendResult.detail["sha256"]`` so the chart copy can be checked later.
"""

from __future__ import annotations

from pathlib import Path

from refflow.plugins import hookimpl
from refflow.plugins.channels.base import (
    Channel,
    Delivery,
    PermanentChannelError,
    SendResult,
    TransientChannelError,
    atomic_write,
    safe_id,
    sha256_hex,
)

DOCUMENT = "chart.pdf"


class PdfChannel(Channel):
    name = "pdf"
    documents = ()
    idempotent = True  # one file per delivery id, written atomically

    def __init__(self, documents_dir: Path) -> None:
        self.documents_dir = Path(documents_dir)

    def validate_target(self, target: str) -> str:
        if target not in ("", None):
            raise PermanentChannelError("the pdf channel files into the chart; its target must be empty")
        return ""

    def path_for(self, delivery: Delivery) -> Path:
        referral = safe_id(delivery.referral_id, "referral id")
        ident = safe_id(delivery.id, "delivery id")
        stem = safe_id(Path(delivery.document_name or DOCUMENT).stem, "document name")
        return self.documents_dir / "chart" / referral / f"{stem}-{ident}.pdf"

    def send(self, delivery: Delivery) -> SendResult:
        self.validate_target(delivery.target)
        name = delivery.document_name or DOCUMENT
        data = delivery.document(name)
        if not data.startswith(b"%PDF-"):
            raise PermanentChannelError(f"delivery {delivery.id}: {name} is not a PDF")
        path = self.path_for(delivery)
        checksum = sha256_hex(data)
        replaced = False
        try:
            if path.exists():
                if sha256_hex(path.read_bytes()) == checksum:
                    return self._result(path, checksum, already=True)
                replaced = True  # re-rendered for the same delivery: newest wins
            atomic_write(path, data)
        except OSError as exc:  # disk full, permissions: staff/operator can fix, retry
            raise TransientChannelError(
                f"could not write the chart PDF ({type(exc).__name__})"
            ) from None
        return self._result(path, checksum, already=False, replaced=replaced)

    def _result(self, path: Path, checksum: str, *, already: bool, replaced: bool = False) -> SendResult:
        relative = path.relative_to(self.documents_dir).as_posix()
        return SendResult(
            reference=relative,
            detail={
                "path": relative,
                "sha256": checksum,
                "bytes": path.stat().st_size,
                "already_filed": already,
                "replaced": replaced,
            },
        )


@hookimpl
def refflow_output_channels(settings):
    return [PdfChannel(settings.documents_dir)]
