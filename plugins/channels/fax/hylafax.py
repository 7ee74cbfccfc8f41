"""A HylaFAX client and the ``hylafax`` fax transport.

HylaFAX's client protocol (``hfaxd``, default port 4559) is FTP with extra
commands, so this module drives it with :mod:`ftplib` and parses nothing but
the replies. The API is small, for the pipeline's "sending" state (a job is
queued, then its status is checked until it is done or failed)::

    with HylafaxClient.connect("fax.example", 4559, "refflow", timeout=30) as fax:
        job = fax.submit(tiff, number="+15555550123", tag=delivery_id)  # -> Submitted
        st = fax.status(job.job_id)          # -> JobStatus (state, pages, dials, ...)
        if st.finished and st.error:         # st.error: Transient/PermanentChannelError
            raise st.error
        fax.cancel(job.job_id)               # JKILL (state failed, code 345)
        for rx in fax.received():            # -> [ReceivedFax] (LIST recvq)
            data = fax.retrieve(rx.name)     # the received TIFF (RETR recvq/<name>)

    HylafaxTransport(host, port, user, modem, resolution).submit(FaxJob) -> SendResult(held)
    HylafaxTransport.status(job_id) -> FaxStatus / .cancel(job_id) / .receive() -> InboundFax…

Idempotency: every job carries the delivery id as its client tag (``JPARM
JOBINFO``, shown by ``JOBFMT %J``; hfaxd stores it as the job's ``jobtag``).
Before queueing, :meth:`HylafaxClient.submit` lists ``sendq`` and ``doneq`` and
returns the existing job for that tag unless every such job failed (a failed
job may be retried as a new one). Limits: two submits of the same delivery at
the very same moment can both queue a job (the pipeline runs one sender per
delivery), and ``doneq`` is cleaned by ``faxqclean`` (by default after a day),
after which a finished job is no longer found.

Errors: every failure becomes a Transient/PermanentChannelError in one place
(:func:`error_for_status` for a job's HylaFAX status code, :meth:`_protocol_error`
for the protocol itself). Messages hold job ids, reply codes and HylaFAX status
codes only: never the fax number, the document, or text a server or remote
machine sent (a reply may echo the dial string).
"""

from __future__ import annotations

import datetime as dt
import ftplib
import io
import re
import socket
from collections.abc import Container, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from refflow.plugins.channels.base import (
    ChannelError,
    PermanentChannelError,
    SendResult,
    TransientChannelError,
    safe_id,
)
from refflow.plugins.channels.fax.transports import (
    CANCEL,
    RECEIVE,
    STATUS,
    FaxJob,
    FaxStatus,
    FaxTransport,
    InboundFax,
)

__all__ = [
    "DEFAULT_PORT",
    "HylafaxClient",
    "HylafaxTransport",
    "JobNotFound",
    "JobStatus",
    "ReceivedFax",
    "STATUS_CODES",
    "Submitted",
    "error_for_status",
]

DEFAULT_PORT = 4559
VRES = {"fine": 196, "normal": 98}  # JPARM VRES: lines per inch
# hfaxd's JPARM STATE words (hfaxd/Jobs.c++ stateVals), lower-cased here.
STATES = ("undefined", "suspended", "pending", "sleeping", "blocked", "ready", "active",
          "done", "failed")
FINISHED = frozenset({"done", "failed"})
# JOBFMT %a: the state as one letter (faxstat(1), "JobFmt").
STATE_LETTERS = {"?": "undefined", "T": "suspended", "P": "pending", "S": "sleeping",
                 "B": "blocked", "W": "ready", "R": "active", "D": "done", "F": "failed"}

TRANSIENT, PERMANENT = "transient", "permanent"

# HylaFAX job status codes -> (transient|permanent, our own reason text).
# The codes are HylaFAX's (6.0+): faxd/STATUS.txt in the HylaFAX sources
# (github.com/ifax/HylaFAX, "FaxRequest: Status codes for jobs", 2007), the
# ``statuscode`` of sendq(5), queried with ``JPARM STATUSCODE``. Seen on the
# fax lab (docs: /work/shared/fax-lab.md): 000 done, 337 blocked, 345 JKILL,
# 333 unanswered after MAXDIALS. The reason text is ours: HylaFAX's own status
# text may carry converter output or remote data, so it never reaches a message.
# Codes not listed fall back to STATUS_RANGES; anything else is transient.
STATUS_CODES: dict[int, tuple[str, str]] = {
    # 000-049 call failures
    1: (TRANSIENT, "the line was busy"),
    2: (TRANSIENT, "no carrier"),
    3: (TRANSIENT, "no answer"),
    4: (TRANSIENT, "no dial tone on the fax server's line"),
    5: (PERMANENT, "the fax number could not be dialled"),
    8: (PERMANENT, "a data modem answered, not a fax machine"),
    10: (PERMANENT, "the number is blacklisted by the modem"),
    11: (TRANSIENT, "no answer"),
    # Class 1 / Class 2 protocol failures that mean "this is not a fax receiver"
    # or "the page image was refused", not a bad line.
    122: (PERMANENT, "the remote machine cannot receive faxes"),
    229: (PERMANENT, "the document's image format was rejected"),
    230: (PERMANENT, "the document's image format was rejected"),
    233: (PERMANENT, "the document's image format was rejected"),
    234: (PERMANENT, "the document's image format was rejected"),
    235: (PERMANENT, "the document's image format was rejected"),
    261: (PERMANENT, "the remote machine cannot receive faxes"),
    263: (PERMANENT, "the document's image format was rejected"),
    264: (PERMANENT, "the remote machine cannot receive faxes"),
    # 300-399 client or server failures
    314: (PERMANENT, "the fax server could not read the document"),
    315: (PERMANENT, "the fax server could not read the document"),
    316: (PERMANENT, "the fax server could not read the document"),
    317: (PERMANENT, "the document has more pages than the fax server accepts"),
    321: (PERMANENT, "document conversion failed"),
    323: (PERMANENT, "the job contains no document"),
    325: (TRANSIENT, "the job's time window ran out before it was sent"),
    327: (PERMANENT, "the fax number is not a number the fax server can dial"),
    328: (PERMANENT, "the configured modem is not registered with the fax server"),
    329: (PERMANENT, "the job contains no document"),
    330: (PERMANENT, "the document's page width was rejected"),
    331: (PERMANENT, "the job's time window was rejected"),
    332: (PERMANENT, "the job's send time was rejected"),
    333: (TRANSIENT, "no answer or busy: too many attempts to dial"),
    334: (TRANSIENT, "the fax failed on every attempt to transmit"),
    335: (PERMANENT, "the document has more pages than the fax server accepts"),
    336: (PERMANENT, "the configured modem does not accept jobs"),
    344: (PERMANENT, "the job was cancelled"),
    345: (PERMANENT, "the job was cancelled"),
    347: (PERMANENT, "document conversion failed"),
    348: (PERMANENT, "the fax server's job control rejected the job"),
    350: (PERMANENT, "the remote machine refused the call"),
    351: (PERMANENT, "the remote machine refused the call"),
    352: (PERMANENT, "the job was cancelled"),
}
# Ranges of faxd/STATUS.txt, for codes not listed above: (first, last, kind, reason).
STATUS_RANGES: tuple[tuple[int, int, str, str], ...] = (
    (0, 49, TRANSIENT, "the call failed"),
    (50, 299, TRANSIENT, "the fax transmission failed (line or protocol error)"),
    (300, 399, TRANSIENT, "the fax server failed to process the job"),
    (400, 419, PERMANENT, "the document's format is not supported by the modem or receiver"),
    (420, 499, TRANSIENT, "the fax server's modem could not be set up"),
    (500, 699, PERMANENT, "the job is not a fax job the server can send"),
    (900, 999, TRANSIENT, "the fax server had an internal error"),
)


def classify_status(code: int | None) -> tuple[str, str]:
    """``(transient|permanent, reason)`` for a HylaFAX status code (see STATUS_CODES)."""
    if code is None:
        return TRANSIENT, "the fax failed for a reason the server did not give"
    if code in STATUS_CODES:
        return STATUS_CODES[code]
    for first, last, kind, reason in STATUS_RANGES:
        if first <= code <= last:
            return kind, reason
    return TRANSIENT, "the fax failed for an unknown reason"


def error_for_status(code: int | None, job_id: str = "") -> ChannelError:
    """The refflow error for a failed job's HylaFAX status code (the one mapping)."""
    kind, reason = classify_status(code)
    where = f"HylaFAX job {job_id}, " if job_id else "HylaFAX "
    shown = "no code" if code is None else f"{code:03d}"
    message = f"fax not sent: {reason} ({where}status {shown})"
    if kind == PERMANENT:
        return PermanentChannelError(message)
    return TransientChannelError(message)


class JobNotFound(PermanentChannelError):
    """The server has no such job (never queued there, or cleaned from doneq)."""


@dataclass(frozen=True)
class Submitted:
    job_id: str
    already: bool  # True: an existing job of this tag was found, nothing queued


@dataclass(frozen=True)
class JobStatus:
    """One job's state as hfaxd reports it.

    ``state``: one of STATES (``done`` and ``failed`` are final: ``finished``).
    ``status``: HylaFAX's status text (may hold remote or converter output: for
    logs at most; show ``error`` / ``reason`` instead). ``remote_id`` (the
    receiver's CSI), ``signal_rate``, ``data_format`` come from the finished
    job's ``doneq`` file and ``duration_s`` (connected time of the last call)
    from its session log ``log/c<commid>``; each is ``None`` when the server
    does not let this user read them (``LogFileMode`` 0600, the default, hides
    session logs).
    """

    job_id: str
    state: str
    status_code: int | None
    status: str
    pages_sent: int
    pages_total: int
    dials: int
    tries: int
    tag: str = ""
    commid: str = ""
    remote_id: str | None = None
    signal_rate: str | None = None
    data_format: str | None = None
    duration_s: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def error(self) -> ChannelError | None:
        """The mapped refflow error of a failed job (``None`` unless state is failed)."""
        if self.state != "failed":
            return None
        return error_for_status(self.status_code, self.job_id)

    @property
    def retryable(self) -> bool | None:
        err = self.error
        return None if err is None else not err.permanent


@dataclass(frozen=True)
class ReceivedFax:
    """One received fax in ``recvq`` (RCVFMT fields; ``sender`` is the caller's TSI)."""

    name: str  # file name in recvq, e.g. fax000000001.tif
    sender: str
    caller_id_name: str
    caller_id_number: str
    pages: int
    received: dt.datetime | None
    duration_s: float | None
    error: str  # the receiving side's error text, "" when none
    receiving: bool  # still being received


# The separator of LIST formats: a tab never occurs in a TSI or a file name hfaxd lists.
_SEP = "\t"
_JOBFMT = _SEP.join(["%j", "%J", "%a"])
_RCVFMT = _SEP.join(["%f", "%s", "%i", "%j", "%p", "%Z", "%h", "%e", "%z"])
_RECEIVED_NAME = re.compile(r"^fax[0-9]{1,12}\.tif$")
_FILE_REPLY = re.compile(r"FILE:\s*(/?[A-Za-z0-9_./-]+?)\)?\.?\s*$")
_JOB_REPLY = re.compile(r"\bJob\s+([0-9]+)\b")
_LOG_TIME = re.compile(r"^[A-Z][a-z]{2} +[0-9]{1,2} ([0-9]{2}):([0-9]{2}):([0-9]{2}(?:\.[0-9]+)?): ")


class HylafaxClient:
    """One connection to hfaxd. Use :meth:`connect` (a context manager closes it).

    A failed data transfer can leave hfaxd's side of the session unusable (the
    next LIST is reset), so after any protocol error the connection is closed
    and the next call opens a new one.
    """

    def __init__(self, host: str, port: int = DEFAULT_PORT, user: str = "refflow",
                 timeout: float = 30.0) -> None:
        self.host, self.port, self.user, self.timeout = host, int(port), user, timeout
        self._ftp: ftplib.FTP | None = None

    @classmethod
    def connect(cls, host: str, port: int = DEFAULT_PORT, user: str = "refflow",
                timeout: float = 30.0) -> HylafaxClient:
        client = cls(host, port, user, timeout)
        client._session()
        return client

    def __enter__(self) -> HylafaxClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        ftp, self._ftp = self._ftp, None
        if ftp is None:
            return
        try:
            ftp.quit()
        except (ftplib.Error, OSError, EOFError):
            ftp.close()

    # -- protocol plumbing --------------------------------------------------

    def _session(self) -> ftplib.FTP:
        if self._ftp is None:
            ftp = ftplib.FTP(timeout=self.timeout)
            with self._errors("connect"):
                ftp.connect(self.host, self.port, timeout=self.timeout)
                try:
                    reply = ftp.sendcmd(f"USER {self.user}")
                    if reply.startswith("331"):  # a password is configured: none here
                        raise ftplib.error_perm("530 password required")
                except BaseException:
                    ftp.close()
                    raise
            self._ftp = ftp
        return self._ftp

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Map ftplib/socket failures of ``what`` (a command word, no arguments)."""
        try:
            yield
        except ChannelError:
            raise
        except ftplib.error_temp as exc:
            self._drop()
            raise self._protocol_error(what, exc, permanent=False) from None
        except (ftplib.error_perm, ftplib.error_proto, ftplib.error_reply) as exc:
            self._drop()
            raise self._protocol_error(what, exc, permanent=True) from None
        except (TimeoutError, socket.timeout):
            self._drop()
            raise TransientChannelError(f"fax server did not answer {what} in time") from None
        except (OSError, EOFError) as exc:
            self._drop()
            raise TransientChannelError(
                f"fax server unreachable during {what} ({type(exc).__name__})") from None

    @staticmethod
    def _protocol_error(what: str, exc: Exception, *, permanent: bool) -> ChannelError:
        code = str(exc)[:3]
        code = code if code.isdigit() else "???"
        message = f"fax server refused {what} (reply {code})"
        return PermanentChannelError(message) if permanent else TransientChannelError(message)

    def _drop(self) -> None:
        ftp, self._ftp = self._ftp, None
        if ftp is not None:
            ftp.close()

    def _cmd(self, command: str, what: str | None = None) -> str:
        if what is None:  # the command word (and a JPARM's name): never its arguments
            words = command.split(" ", 2)
            what = " ".join(words[:2]) if words[0] == "JPARM" else words[0]
        ftp = self._session()
        with self._errors(what):
            return ftp.sendcmd(command)

    def _list(self, command: str) -> list[str]:
        ftp = self._session()
        lines: list[str] = []
        with self._errors(command):
            ftp.retrlines(command, lines.append)
        return lines

    def _retr(self, path: str, what: str = "RETR") -> bytes:
        ftp = self._session()
        out = io.BytesIO()
        with self._errors(what):
            ftp.voidcmd("TYPE I")
            ftp.retrbinary(f"RETR {path}", out.write)
        return out.getvalue()

    @staticmethod
    def _value(reply: str) -> str:
        """The value of a ``213 <value>`` JPARM reply."""
        return reply[4:].strip() if len(reply) > 3 else ""

    def _jparm(self, name: str) -> str:
        return self._value(self._cmd(f"JPARM {name}"))

    # -- jobs ---------------------------------------------------------------

    def find_jobs(self, tag: str) -> list[tuple[str, str]]:
        """``[(job_id, state)]`` of every job in sendq and doneq tagged ``tag``."""
        self._cmd(f'JOBFMT "{_JOBFMT}"', "JOBFMT")
        found = []
        for queue in ("sendq", "doneq"):
            for line in self._list(f"LIST {queue}"):
                parts = line.split(_SEP)
                if len(parts) == 3 and parts[1].strip() == tag:
                    found.append((parts[0].strip(), STATE_LETTERS.get(parts[2].strip(), "undefined")))
        return found

    def find_job(self, tag: str) -> str | None:
        """The newest job tagged ``tag`` that has not failed, or ``None``."""
        live = [job for job, state in self.find_jobs(tag) if state != "failed"]
        return max(live, key=int) if live else None

    def submit(self, tiff: bytes, *, number: str, tag: str, resolution: str = "fine",
               modem: str | None = None, max_dials: int = 3, max_tries: int = 3,
               kill_after_minutes: int = 180, page_width_mm: int = 215,
               page_length_mm: int = 279) -> Submitted:
        """Queue a TIFF Class F fax to ``number`` once per ``tag`` (see the module doc).

        ``tag`` is the idempotency key (a refflow delivery id: letters, digits,
        ``.``, ``_``, ``-``). ``modem``: a modem name (``ttyS0``) or ``None``
        for any. ``kill_after_minutes``: HylaFAX gives up (status 325) after.
        """
        safe_id(tag, "fax job tag")
        if resolution not in VRES:
            raise PermanentChannelError(f"fax resolution must be one of {sorted(VRES)}")
        if not re.fullmatch(r"\+?[0-9]{3,20}", number or ""):
            raise PermanentChannelError("fax number must be digits, optionally after '+'")
        if modem is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", modem):
            raise PermanentChannelError("fax modem name must be letters, digits, '.', '_', '-'")
        existing = self.find_job(tag)
        if existing is not None:
            return Submitted(existing, already=True)

        ftp = self._session()
        with self._errors("STOT"):
            ftp.voidcmd("TYPE I")
            reply = ftp.storbinary("STOT", io.BytesIO(tiff))
        match = _FILE_REPLY.search(reply)
        if not match:
            self._drop()
            raise TransientChannelError("fax server did not name the uploaded document")
        document = match.group(1)
        minutes = max(1, int(kill_after_minutes))
        params = [
            ("SENDTIME", "NOW"),
            # LASTTIME is relative (ddhhmm); without it hfaxd keeps its 3 h default
            # as an absolute time in 1970 and faxq fails the job at once (325).
            ("LASTTIME", f"{minutes // 1440:02d}{minutes // 60 % 24:02d}{minutes % 60:02d}"),
            ("DIALSTRING", number),
            ("VRES", str(VRES[resolution])),
            ("PAGEWIDTH", str(int(page_width_mm))),
            ("PAGELENGTH", str(int(page_length_mm))),
            ("MODEM", modem or "any"),
            ("MAXDIALS", str(int(max_dials))),
            ("MAXTRIES", str(int(max_tries))),
            ("NOTIFY", "none"),
            ("JOBINFO", tag),
            ("DOCUMENT", document),
        ]
        self._cmd("JNEW")
        for name, value in params:
            self._cmd(f"JPARM {name} {value}")
        reply = self._cmd("JSUBM")
        match = _JOB_REPLY.search(reply)
        if not match:
            self._drop()
            raise TransientChannelError("fax server did not answer a job id")
        return Submitted(match.group(1), already=False)

    def _select(self, job_id: str) -> None:
        job_id = str(job_id)
        if not job_id.isdigit():
            raise PermanentChannelError("HylaFAX job ids are numbers")
        try:
            self._cmd(f"JOB {job_id}")
        except PermanentChannelError:
            raise JobNotFound(f"HylaFAX has no job {job_id}") from None

    def status(self, job_id: str) -> JobStatus:
        """The job's state now; a finished job also its CSI/rate/duration when readable."""
        job_id = str(job_id)
        self._select(job_id)
        state = self._jparm("STATE").lower()
        code_text = self._jparm("STATUSCODE")
        values = {name: self._jparm(name) for name in
                  ("STATUS", "NPAGES", "TOTPAGES", "TOTDIALS", "TOTTRIES", "COMMID", "JOBINFO")}
        status = JobStatus(
            job_id=job_id,
            state=state if state in STATES else "undefined",
            status_code=int(code_text) if code_text.isdigit() else None,
            status=values["STATUS"],
            pages_sent=_int(values["NPAGES"]),
            pages_total=_int(values["TOTPAGES"]),
            dials=_int(values["TOTDIALS"]),
            tries=_int(values["TOTTRIES"]),
            tag=values["JOBINFO"],
            commid=values["COMMID"],
        )
        if status.finished:
            status = self._call_details(status)
        return status

    def _call_details(self, status: JobStatus) -> JobStatus:
        fields: dict = {}
        record = self._optional_retr(f"doneq/q{status.job_id}")
        if record is not None and status.state == "done":  # a failed job's rate is the wish
            values = _job_file(record)
            fields = {"remote_id": values.get("csi") or None,
                      "signal_rate": values.get("signalrate") or None,
                      "data_format": values.get("dataformat") or None}
        if status.commid.isdigit():
            log = self._optional_retr(f"log/c{status.commid}")
            if log is not None:
                fields["duration_s"] = _log_duration(log)
        return JobStatus(**{**status.__dict__, **fields})

    def _optional_retr(self, path: str) -> bytes | None:
        try:
            return self._retr(path)
        except ChannelError:
            return None  # not readable for this user (modes are the server's choice)

    def cancel(self, job_id: str) -> None:
        """Kill a job (JKILL): it ends ``failed`` with status 345. A finished job is left alone.

        A queued job is killed at once; for a job whose call is in progress
        hfaxd answers only once faxsend has hung up the modem (10-20 s seen on
        the lab), which may exceed the client's timeout (a TransientChannelError:
        ask :meth:`status` again later)."""
        self._select(str(job_id))
        try:
            self._cmd("JKILL")
        except PermanentChannelError:
            self._select(str(job_id))
            if self._jparm("STATE").lower() in FINISHED:
                return
            raise

    # -- received faxes -------------------------------------------------------

    def received(self) -> list[ReceivedFax]:
        """Faxes in ``recvq``, oldest first (``LIST recvq`` with ``RCVFMT``)."""
        self._cmd(f'RCVFMT "{_RCVFMT}"', "RCVFMT")
        faxes = []
        for line in self._list("LIST recvq"):
            parts = line.split(_SEP)
            if len(parts) != 9:
                continue
            name, sender, cid_name, cid_number, pages, when, took, error, busy = parts
            faxes.append(ReceivedFax(
                name=name.strip(), sender=sender.strip(), caller_id_name=cid_name.strip(),
                caller_id_number=cid_number.strip(), pages=_int(pages),
                received=(dt.datetime.fromtimestamp(int(when), dt.UTC)
                          if when.strip().isdigit() else None),
                duration_s=_hms(took), error=error.strip(), receiving=busy.strip() == "*",
            ))
        return sorted(faxes, key=lambda f: (f.received or dt.datetime.min.replace(tzinfo=dt.UTC),
                                            f.name))

    def retrieve(self, name: str) -> bytes:
        """The received fax ``name`` (as listed by :meth:`received`): TIFF bytes."""
        if not _RECEIVED_NAME.match(name or ""):
            raise PermanentChannelError("received fax names look like fax000000001.tif")
        return self._retr(f"recvq/{name}", "RETR recvq")


def _int(text: str) -> int:
    text = (text or "").strip()
    return int(text) if text.isdigit() else 0


def _hms(text: str) -> float | None:
    parts = (text or "").strip().split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return None
    seconds = 0.0
    for value in values:
        seconds = seconds * 60 + value
    return seconds if parts != [""] else None


def _job_file(data: bytes) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in data.decode("latin-1").splitlines():
        key, sep, value = line.partition(":")
        if sep and key in {"csi", "signalrate", "dataformat", "commid"}:
            values[key] = value.strip()
    return values


def _log_duration(data: bytes) -> float | None:
    """Seconds from the first to the last time stamp of a session log (only times are read)."""
    stamps = []
    for line in data.decode("latin-1").splitlines():
        match = _LOG_TIME.match(line)
        if match:
            hours, minutes, seconds = match.groups()
            stamps.append(int(hours) * 3600 + int(minutes) * 60 + float(seconds))
    if len(stamps) < 2:
        return None
    span = stamps[-1] - stamps[0]
    return round(span + 86400 if span < 0 else span, 2)  # a call across midnight


class HylafaxTransport(FaxTransport):
    """The ``hylafax`` transport: queues each fax as a HylaFAX job (one per delivery id).

    ``submit`` returns as soon as the job is queued (``SendResult.held``, the
    HylaFAX job id as ``reference``); the pipeline then follows the job with
    :meth:`status` until HylaFAX says it was sent or failed, and a cancelled
    referral's job is killed with :meth:`cancel`. :meth:`receive` lists the
    faxes in hfaxd's received queue (``recvq``) for the fax inbox.
    One connection to hfaxd per call.
    """

    name = "hylafax"
    supports = frozenset({STATUS, CANCEL, RECEIVE})

    def __init__(self, host: str, port: int = DEFAULT_PORT, user: str = "refflow",
                 modem: str | None = None, resolution: str = "fine", *,
                 timeout: float = 30.0, max_dials: int = 3, max_tries: int = 3,
                 kill_after_minutes: int = 180) -> None:
        if resolution not in VRES:
            raise ValueError(f"resolution must be one of {sorted(VRES)}")
        self.host, self.port, self.user = host, int(port), user
        self.modem, self.resolution, self.timeout = modem or None, resolution, timeout
        self.max_dials, self.max_tries = max_dials, max_tries
        self.kill_after_minutes = kill_after_minutes

    @classmethod
    def from_settings(cls, settings) -> HylafaxTransport:
        """From refflow settings: ``fax_hylafax_host`` / ``_port`` / ``_user`` /
        ``_modem`` (empty: any modem) and ``fax_resolution``."""
        return cls(host=settings.fax_hylafax_host, port=settings.fax_hylafax_port,
                   user=settings.fax_hylafax_user, modem=settings.fax_hylafax_modem or None,
                   resolution=settings.fax_resolution)

    def client(self) -> HylafaxClient:
        return HylafaxClient.connect(self.host, self.port, self.user, self.timeout)

    def submit(self, job: FaxJob) -> SendResult:
        safe_id(job.delivery_id, "delivery id")
        with self.client() as fax:
            queued = fax.submit(
                job.tiff, number=job.number, tag=job.delivery_id, resolution=self.resolution,
                modem=self.modem, max_dials=self.max_dials, max_tries=self.max_tries,
                kill_after_minutes=self.kill_after_minutes,
            )
        return SendResult(
            reference=queued.job_id, held=True,
            detail={"transport": self.name, "job_id": queued.job_id, "pages_total": job.pages,
                    "already_submitted": queued.already},
        )

    def status(self, reference: str) -> FaxStatus:
        with self.client() as fax:
            return fax_status(fax.status(reference))

    def cancel(self, reference: str) -> None:
        with self.client() as fax:
            fax.cancel(reference)

    def receive(self, seen: Container[str] = frozenset()) -> Iterator[InboundFax]:
        """The received queue's complete faxes not in ``seen`` (recvq file names
        the inbox holds already), oldest first: one connection for the listing,
        one per fax fetched, so a long queue never holds a connection while the
        caller stores each."""
        with self.client() as fax:
            listed = [rx for rx in fax.received()
                      if not rx.receiving and not rx.error and rx.name not in seen]
        for rx in sorted(listed, key=lambda r: (r.received is None, r.received or 0, r.name)):
            with self.client() as fax:
                content = fax.retrieve(rx.name)
            yield InboundFax(content=content, reference=rx.name,
                             from_number=rx.caller_id_number or rx.sender or None)


def fax_status(job: JobStatus) -> FaxStatus:
    """HylaFAX's job status as the transport contract's :class:`FaxStatus`."""
    state = {"done": "sent", "failed": "failed", "active": "sending"}.get(job.state, "queued")
    detail = {"job_id": job.job_id, "pages_sent": job.pages_sent,
              "pages_total": job.pages_total, "dials": job.dials, "tries": job.tries}
    if job.status_code is not None:
        detail["status_code"] = job.status_code
    for key in ("remote_id", "duration_s", "signal_rate", "data_format", "commid"):
        value = getattr(job, key)
        if value not in (None, ""):
            detail[key] = value
    return FaxStatus(state=state, detail=detail, error=job.error)
