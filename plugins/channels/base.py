"""The one contract every output channel follows.

The pipeline hands a channel a :class:`Delivery` (ids, a target, the rendered
documents). The channel validates the target up front, then ``send()``s the
delivery and returns a :class:`SendResult`, or raises a :class:`ChannelError`:

- :class:`TransientChannelError` — try again later (the Celery pipeline retries
  with backoff; the channel itself never retries, so attempts don't multiply);
- :class:`PermanentChannelError` — retrying cannot help; the delivery fails and
  staff are told.

``send()`` is idempotent per ``delivery.id``: sending the same delivery twice
must not produce two faxes, two chart files or two distinct emails (an email
retry carries the same Message-ID so it is recognisable).

Error messages end up on the staff dashboard and in logs: they must never hold
PHI (no names, numbers, addresses, and no text echoed back by a remote server).
"""

from __future__ import annotations

import abc
import hashlib
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "Channel",
    "ChannelError",
    "Delivery",
    "PermanentChannelError",
    "SendResult",
    "TransientChannelError",
    "atomic_write",
    "safe_id",
    "sha256_hex",
]

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Delivery:
    """What the pipeline hands a channel: ids, target and documents, nothing else."""

    id: str  # stable delivery id: the idempotency key for every channel
    referral_id: str
    channel: str
    target: str  # E.164 fax number, email address, or "" for the chart
    documents: Mapping[str, bytes]  # e.g. {"handout.pdf": ..., "chart.pdf": ..., "fax.tiff": ...}
    subject: str  # no PHI: it may appear in mail headers and logs
    recipient_name: str | None = None
    attempt: int = 1
    # the document this delivery sends (its route's): "fax.tiff", "handout.pdf",
    # "summary.pdf", "chart.pdf", the "not accepted" letter "decline.tiff" / "decline.pdf", ...
    document_name: str = ""
    # the language of the recipient's words: the plan's (the handout's) for
    # the patient's email, "en" otherwise (the referrer's documents stay in
    # the clinic's language)
    language: str = "en"

    def document(self, name: str) -> bytes:
        """The named document, or a :class:`PermanentChannelError` saying which is missing."""
        try:
            data = self.documents[name]
        except KeyError:
            raise PermanentChannelError(
                f"delivery {self.id} has no document {name!r} (channel {self.channel})"
            ) from None
        if not data:
            raise PermanentChannelError(f"delivery {self.id}: document {name!r} is empty")
        return data


@dataclass(frozen=True)
class SendResult:
    """What a successful ``send()`` returns: a reference to show staff, plus details."""

    reference: str  # provider job id, Message-ID, file path relative to the store, ...
    detail: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    # True: the provider has the message queued but has not sent it yet (a fax
    # job): the delivery stays ``sending`` and the pipeline follows it with the
    # channel's ``check(reference)`` until it is sent or failed.
    held: bool = False


class ChannelError(Exception):
    """A delivery failed. ``permanent`` says whether a retry could help.

    ``message`` must be free of PHI: it is shown to staff and logged.
    """

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class TransientChannelError(ChannelError):
    """Try again later: timeouts, connection errors, 4xx SMTP replies, HTTP 429/5xx."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=False)


class PermanentChannelError(ChannelError):
    """Retrying cannot help: bad target, rejected recipient, 5xx SMTP, HTTP 4xx, bad config."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class Channel(abc.ABC):
    """Base class of output channels (built-in and third-party).

    Subclasses set ``name`` (unique; what routes and deliveries refer to) and
    ``documents`` (documents ``send()`` may use besides the delivery's own,
    ``delivery.document_name``) and implement :meth:`validate_target` and
    :meth:`send`.

    ``idempotent`` says whether sending the same delivery twice is harmless
    (the second send finds or replaces the first: a file named by the
    delivery id, a provider that honours an idempotency key, a fax job that
    can be looked up). A delivery whose sender stopped mid-send is sent again
    on an idempotent channel; on any other (SMTP cannot tell whether a message
    went) it becomes ``in_doubt`` for staff to decide, unless the clinic sets
    ``REFFLOW_RESEND_IN_DOUBT``. ``retry_window_hours`` (``None``: the clinic's
    ``REFFLOW_RETRY_WINDOW_HOURS``) is how long transient errors are retried.
    """

    name: str = ""
    documents: tuple[str, ...] = ()
    idempotent: bool = False
    retry_window_hours: float | None = None

    @abc.abstractmethod
    def validate_target(self, target: str) -> str:
        """Return the normalized target or raise :class:`PermanentChannelError`.

        Called at intake/routing time, before anything is queued, and again
        before sending. The error message names the problem, not the value.
        """

    @abc.abstractmethod
    def send(self, delivery: Delivery) -> SendResult:
        """Deliver once per ``delivery.id``; raise Transient/PermanentChannelError.

        Never retry inside: retries happen in the Celery pipeline only.
        """

    # -- a channel whose send() may answer SendResult(held=True) -------------

    def check(self, reference: str):
        """Where the provider has got with a held message: an object with
        ``state`` (``queued``, ``sending``, ``sent``, ``failed``), ``finished``,
        ``detail`` (what it confirmed) and ``error`` (a ChannelError when
        failed), like :class:`refflow.plugins.channels.fax.FaxStatus`. Raise a
        ChannelError when the provider cannot be asked now (asked again later)."""
        raise NotImplementedError(f"channel {self.name!r} does not hold messages")

    def can_cancel(self) -> bool:
        """Whether :meth:`cancel` can stop a held message."""
        return False

    def cancel(self, reference: str) -> None:
        """Stop a held message before it is sent (its referral was cancelled)."""
        raise NotImplementedError(f"channel {self.name!r} cannot cancel")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} channel {self.name!r}>"


# -- helpers shared by the built-in channels --------------------------------


def safe_id(value: str, what: str = "id") -> str:
    """Return ``value`` when it is safe in a file name or header, else a permanent error.

    Paths and Message-IDs are derived from ids only (never from PHI); this
    check also keeps ``../`` out of the document store.
    """
    if not isinstance(value, str) or not _SAFE_ID.match(value):
        raise PermanentChannelError(
            f"{what} must be 1-128 characters of letters, digits, '.', '_' or '-'"
        )
    return value


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes, *, mode: int = 0o640, replace: bool = True) -> bool:
    """Write ``data`` to ``path`` so readers never see a partial file.

    The bytes go to a temporary name in the same directory, are fsynced, and
    are then renamed into place. With ``replace=False`` the file is only
    created when absent (hard link, so two concurrent writers cannot both win)
    and the return value says whether this call created it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
            created = True
        else:
            try:
                os.link(tmp, path)
                created = True
            except FileExistsError:
                created = False
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return created


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
