"""The ``email`` channel: the patient's handout PDF by SMTP (or into a file outbox).

``REFFLOW_SMTP_URL`` chooses the server:

- ``smtp://user:pass@host:587`` — SMTP upgraded with STARTTLS; a server that
  does not offer it is refused (the handout is PHI), except a relay on this
  machine (``localhost``, a loopback address), used with STARTTLS when it
  offers it. ``?starttls=auto`` allows a plain session with a remote server
  that does not offer it, ``?starttls=never`` never tries it, and
  ``?starttls=require`` requires it even on loopback. Credentials are only
  sent over TLS.
- ``smtps://user:pass@host:465`` — implicit TLS from the first byte.
- user and password are URL-decoded (write ``@`` as ``%40``, ``/`` as ``%2F``).
- ``?cafile=/path/ca.pem`` trusts an extra CA (self-signed test servers);
  ``?verify=false`` turns certificate checks off (tests only).
- ``REFFLOW_SMTP_TIMEOUT`` (seconds) bounds every socket operation.

With no ``REFFLOW_SMTP_URL`` in embedded mode (``refflow run``) the message is
written as ``<mail_outbox_dir>/<delivery_id>.eml`` instead.

The message: ``multipart/mixed`` with a ``multipart/alternative`` plain-text +
HTML body in plain language (clinic name and phone, nothing clinical in the
subject) and the handout attached as ``exercise-plan.pdf``. The Message-ID is
``<delivery-{delivery_id}@{domain of REFFLOW_SMTP_FROM}>``: every retry of a
delivery carries the same one, so a duplicate after a lost reply is
recognisable. SMTP is at-least-once: after a timeout we cannot know whether
the server accepted the message, so the pipeline's retry may send it again
with the same Message-ID.

Errors are mapped in :func:`map_smtp_error` only: 4xx replies, connection
errors and timeouts are transient; 5xx replies (e.g. 550), refused
recipients with a 5xx code, failed authentication and certificate errors are
permanent. Server reply text is never kept (it may echo the address).
"""

from __future__ import annotations

import html
import ipaddress
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from refflow.documents.names import DECLINE, DECLINE_TEXT, HANDOUT, PATIENT_LINK
from refflow.documents.translations import _, using
from refflow.intake.contact import normalize_email
from refflow.plugins import hookimpl
from refflow.plugins.channels.base import (
    Channel,
    ChannelError,
    Delivery,
    PermanentChannelError,
    SendResult,
    TransientChannelError,
    atomic_write,
    safe_id,
)

DOCUMENT = HANDOUT
LETTER_ATTACHMENT_NAME = "referral-not-accepted.pdf"
ATTACHMENT_NAME = "exercise-plan.pdf"


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool
    starttls: str  # "auto" | "require" | "never"
    username: str | None
    password: str | None
    verify: bool
    cafile: str | None
    timeout: float

    @classmethod
    def from_url(cls, url: str, timeout: float = 30.0) -> SmtpConfig:
        """Parse ``smtp://`` / ``smtps://`` URLs; ValueError names what is wrong."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("REFFLOW_SMTP_URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("REFFLOW_SMTP_URL has no host")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"starttls", "verify", "cafile"}
        if unknown:
            raise ValueError(f"REFFLOW_SMTP_URL: unknown option(s) {', '.join(sorted(unknown))}")
        # The handout is PHI: a server on another machine must offer STARTTLS
        # unless the URL says otherwise; a relay on this machine (loopback)
        # is used with TLS when it offers it and without when it does not.
        starttls = query.get("starttls", "auto" if _loopback(parts.hostname) else "require").lower()
        starttls = {"required": "require", "true": "require", "false": "never"}.get(starttls, starttls)
        if starttls not in ("auto", "require", "never"):
            raise ValueError("REFFLOW_SMTP_URL: starttls must be auto, require or never")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 25),
            implicit_tls=implicit,
            starttls="never" if implicit else starttls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            verify=query.get("verify", "true").lower() not in ("false", "0", "no", "off"),
            cafile=query.get("cafile"),
            timeout=timeout,
        )

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.cafile)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def map_smtp_error(exc: BaseException, stage: str) -> ChannelError:
    """The one place SMTP/socket errors become Transient/PermanentChannelError."""
    if isinstance(exc, ChannelError):
        return exc
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        if codes and all(400 <= code < 500 for code in codes):
            return TransientChannelError(f"SMTP recipient deferred ({codes[0]}) at {stage}")
        return PermanentChannelError(
            f"SMTP recipient refused ({codes[0] if codes else '?'}) at {stage}"
        )
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return PermanentChannelError(f"SMTP authentication failed ({exc.smtp_code})")
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        if 400 <= code < 500 or code == -1:
            return TransientChannelError(f"SMTP {code} (temporary) at {stage}")
        return PermanentChannelError(f"SMTP {code} at {stage}")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentChannelError(f"SMTP server does not support {stage}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentChannelError("SMTP server certificate could not be verified")
    if isinstance(exc, (smtplib.SMTPServerDisconnected, socket.timeout, TimeoutError, OSError)):
        return TransientChannelError(f"SMTP connection problem at {stage} ({type(exc).__name__})")
    if isinstance(exc, smtplib.SMTPException):
        return TransientChannelError(f"SMTP error at {stage} ({type(exc).__name__})")
    raise exc


class EmailChannel(Channel):
    """Emails a delivery's document: the patient's handout with a message to the
    patient, or the "referral not accepted" letter with its words as the body,
    to the referring office."""

    name = "email"
    # the letter's words, for the body of its email; the patient's page link
    documents = (DECLINE_TEXT, PATIENT_LINK)
    idempotent = False  # SMTP cannot tell whether a message went (resends keep the Message-ID)

    def __init__(self, settings) -> None:
        self.settings = settings
        self.config_error: str | None = None
        self.smtp: SmtpConfig | None = None
        if settings.smtp_url:
            try:
                self.smtp = SmtpConfig.from_url(settings.smtp_url, settings.smtp_timeout)
            except ValueError as exc:  # messages name the option, never the credentials
                self.config_error = str(exc)

    # -- target ------------------------------------------------------------
    def validate_target(self, target: str) -> str:
        try:
            return normalize_email(target)
        except ValueError:
            raise PermanentChannelError("email target is not a valid email address") from None

    # -- message -----------------------------------------------------------
    def message_id(self, delivery: Delivery) -> str:
        domain = parseaddr(self.settings.smtp_from)[1].rpartition("@")[2] or "refflow"
        return f"<delivery-{safe_id(delivery.id, 'delivery id')}@{domain}>"

    def build_message(self, delivery: Delivery, to: str) -> EmailMessage:
        if delivery.document_name == DECLINE:
            return self._letter_message(delivery, to)
        return self._handout_message(delivery, to)

    def _envelope(self, delivery: Delivery, to: str, subject: str) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = subject
        msg["From"] = self.settings.smtp_from
        msg["To"] = formataddr((delivery.recipient_name or "", to))
        msg["Message-ID"] = self.message_id(delivery)
        msg["Date"] = format_datetime(_now())
        msg["X-Refflow-Delivery"] = delivery.id
        msg["Auto-Submitted"] = "auto-generated"
        return msg

    def _letter_message(self, delivery: Delivery, to: str) -> EmailMessage:
        msg = self._envelope(delivery, to, f"Referral not accepted – {self.settings.clinic_name}")
        msg.set_content(delivery.document(DECLINE_TEXT).decode())
        msg.add_attachment(delivery.document(DECLINE), maintype="application", subtype="pdf",
                           filename=LETTER_ATTACHMENT_NAME)
        return msg

    def _handout_message(self, delivery: Delivery, to: str) -> EmailMessage:
        s = self.settings
        clinic, phone = s.clinic_name, s.clinic_phone
        link = (delivery.documents.get(PATIENT_LINK) or b"").decode().strip()
        # the patient's language: the handout's (the plan's), English otherwise
        with using(getattr(delivery, "language", "en") or "en") as language:
            name = delivery.recipient_name
            greeting = _("Hello {name},").format(name=name) if name else _("Hello,")
            attached = _("Your home exercise plan from {clinic} is attached to this email as a "
                         "PDF file ({file}). Please print it or keep it on your phone.")
            slowly = _("Start slowly. If an exercise causes pain, dizziness, chest pain or "
                       "shortness of breath, {stop}.")
            stop = _("stop and call us")
            on_phone = _("See your exercises on your phone and log each session")
            asked = _("you will be asked for your date of birth")
            questions = _("Questions? Call {clinic} at {phone}.")
            mistake = _("This email was sent to you by your clinic. If you got it by mistake, "
                        "please delete it and call us.")
            subject = _("Your exercise plan from {clinic}").format(clinic=clinic)
        if language == "en" and delivery.subject:
            subject = delivery.subject
        text = (
            f"{greeting}\n\n"
            f"{attached.format(clinic=clinic, file=ATTACHMENT_NAME)}\n\n"
            f"{slowly.format(stop=stop)}\n\n"
            + (f"{on_phone} ({asked}):\n{link}\n\n" if link else "")
            + f"{questions.format(clinic=clinic, phone=phone)}\n\n"
            f"{mistake}\n"
        )
        e = html.escape
        tel = f"<a href=\"tel:{e(phone.replace(' ', ''))}\">{e(phone)}</a>"
        body_html = (
            f"<!doctype html><html lang=\"{e(language)}\">"
            "<body style=\"font-family:sans-serif;font-size:16px\">"
            f"<p>{e(greeting)}</p>"
            f"<p>{e(attached).format(clinic=f'<strong>{e(clinic)}</strong>', file=f'<em>{ATTACHMENT_NAME}</em>')}</p>"
            f"<p>{e(slowly).format(stop=f'<strong>{e(stop)}</strong>')}</p>"
            + (f"<p><a href=\"{e(link)}\">{e(on_phone)}</a> ({e(asked)}).</p>" if link else "")
            + f"<p>{e(questions).format(clinic=e(clinic), phone=tel)}</p>"
            f"<p style=\"font-size:13px;color:#555\">{e(mistake)}</p>"
            "</body></html>"
        )
        msg = self._envelope(delivery, to, subject)
        msg.set_content(text)
        msg.add_alternative(body_html, subtype="html")
        msg.add_attachment(
            delivery.document(DOCUMENT), maintype="application", subtype="pdf",
            filename=ATTACHMENT_NAME,
        )
        return msg

    # -- sending -----------------------------------------------------------
    def send(self, delivery: Delivery) -> SendResult:
        if self.config_error:
            raise PermanentChannelError(self.config_error)
        to = self.validate_target(delivery.target)
        msg = self.build_message(delivery, to)
        if self.smtp is None:
            return self._to_outbox(delivery, msg)
        return self._by_smtp(msg, to)

    def _to_outbox(self, delivery: Delivery, msg: EmailMessage) -> SendResult:
        if not self.settings.embedded:
            raise PermanentChannelError("REFFLOW_SMTP_URL is not set (required in production)")
        outbox = Path(self.settings.mail_outbox_dir)
        path = outbox / f"{safe_id(delivery.id, 'delivery id')}.eml"
        try:
            created = atomic_write(path, msg.as_bytes(), mode=0o600, replace=False)
        except OSError as exc:
            raise TransientChannelError(
                f"could not write to the mail outbox ({type(exc).__name__})"
            ) from None
        return SendResult(
            reference=msg["Message-ID"],
            detail={"outbox": path.name, "already_written": not created},
        )

    def _by_smtp(self, msg: EmailMessage, to: str) -> SendResult:
        cfg = self.smtp
        assert cfg is not None
        stage = "connect"
        client: smtplib.SMTP | None = None
        try:
            if cfg.implicit_tls:
                client = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, timeout=cfg.timeout, context=cfg.ssl_context()
                )
            else:
                client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
            stage = "EHLO"
            client.ehlo()
            tls = cfg.implicit_tls
            if not tls and cfg.starttls != "never":
                if client.has_extn("starttls"):
                    stage = "STARTTLS"
                    client.starttls(context=cfg.ssl_context())
                    client.ehlo()
                    tls = True
                elif cfg.starttls == "require":
                    raise PermanentChannelError(
                        "SMTP server does not offer STARTTLS and the URL requires it"
                    )
            if cfg.username:
                if not tls:
                    raise PermanentChannelError(
                        "refusing to send SMTP credentials without TLS (use smtps:// or a "
                        "server that offers STARTTLS)"
                    )
                stage = "AUTH"
                client.login(cfg.username, cfg.password or "")
            stage = "MAIL"
            refused = client.send_message(msg, from_addr=parseaddr(self.settings.smtp_from)[1],
                                          to_addrs=[to])
            if refused:  # pragma: no cover - one recipient: smtplib raises instead
                raise smtplib.SMTPRecipientsRefused(refused)
            stage = "QUIT"
        except (smtplib.SMTPException, OSError) as exc:  # OSError covers ssl and timeouts
            if isinstance(exc, smtplib.SMTPRecipientsRefused):
                stage = "RCPT"
            elif isinstance(exc, smtplib.SMTPDataError):
                stage = "DATA"
            error = map_smtp_error(exc, stage)
            raise error from None
        finally:
            if client is not None:
                try:
                    client.quit()
                except (smtplib.SMTPException, OSError):
                    client.close()
        return SendResult(
            reference=msg["Message-ID"],
            detail={"message_id": msg["Message-ID"], "server": f"{cfg.host}:{cfg.port}",
                    "tls": "implicit" if cfg.implicit_tls else cfg.starttls},
        )


def _now():
    import datetime as dt

    return dt.datetime.now(dt.UTC)


@hookimpl
def refflow_output_channels(settings):
    return [EmailChannel(settings)]
