"""The built-in ``spool`` fax transport: a folder a fax server picks jobs up from.

Layout under ``settings.fax_spool_dir`` (names from ids only, never PHI)::

    docq/<delivery_id>.tif     the fax image, TIFF Class F
    sendq/<delivery_id>.json   the job: number, pages, delivery id, created, sha256

Both are written atomically (temporary name, fsync, rename) and the TIFF
first, so a job file never points at a half-written image: a fax server or
a bridge script should look only at ``sendq/*.json``. A job file that exists
means the delivery is spooled; sending the same delivery again changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from refflow.plugins.channels.base import (
    SendResult,
    TransientChannelError,
    atomic_write,
    safe_id,
    sha256_hex,
)
from refflow.plugins.channels.fax.transports import FaxJob, FaxTransport

JOB_FORMAT = "refflow-fax-job/1"


class SpoolTransport(FaxTransport):
    """Writing the job is the delivery's end: the gateway that watches the
    folder sends it (nothing to follow, cancel or receive)."""

    name = "spool"
    supports = frozenset()

    def __init__(self, spool_dir: Path) -> None:
        self.spool_dir = Path(spool_dir)

    def paths(self, delivery_id: str) -> tuple[Path, Path]:
        ident = safe_id(delivery_id, "delivery id")
        return self.spool_dir / "docq" / f"{ident}.tif", self.spool_dir / "sendq" / f"{ident}.json"

    def submit(self, job: FaxJob) -> SendResult:
        tiff_path, job_path = self.paths(job.delivery_id)
        try:
            if job_path.exists():
                return self._result(job_path, already=True)
            checksum = sha256_hex(job.tiff)
            if not (tiff_path.exists() and sha256_hex(tiff_path.read_bytes()) == checksum):
                atomic_write(tiff_path, job.tiff)
            record = {
                "format": JOB_FORMAT,
                "delivery_id": job.delivery_id,
                "referral_id": job.referral_id,
                "number": job.number,
                "pages": job.pages,
                "document": tiff_path.relative_to(self.spool_dir).as_posix(),
                "sha256": checksum,
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "attempt": job.attempt,
            }
            data = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
            created = atomic_write(job_path, data, replace=False)
            return self._result(job_path, already=not created)
        except OSError as exc:
            raise TransientChannelError(
                f"could not write to the fax spool ({type(exc).__name__})"
            ) from None

    def _result(self, job_path: Path, *, already: bool) -> SendResult:
        record = json.loads(job_path.read_text())
        relative = job_path.relative_to(self.spool_dir).as_posix()
        return SendResult(
            reference=relative,
            detail={
                "job": relative,
                "document": record["document"],
                "pages": record["pages"],
                "sha256": record["sha256"],
                "already_spooled": already,
            },
        )
