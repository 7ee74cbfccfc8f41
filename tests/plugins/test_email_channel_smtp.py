"""The email channel against a real SMTP server (aiosmtpd, in this process).

STARTTLS + AUTH, implicit TLS (smtps), plain; 451-then-250 is transient then
delivered; 550 is permanent; the received message is parsed and its
attachment is the handout PDF; the Message-ID is the same on every retry.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import socket
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from refflow.plugins.channels.base import (
    Delivery,
    PermanentChannelError,
    TransientChannelError,
)
from refflow.plugins.channels.email import EmailChannel, SmtpConfig

USER, PASSWORD = "clinic", "p@ss/w:rd"  # needs URL-encoding in REFFLOW_SMTP_URL
PATIENT = "ann.lee@example.org"


@dataclass
class Recorder:
    """aiosmtpd handler: records messages and how the session looked."""

    data_replies: list[str] = field(default_factory=list)  # answered before a 250
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    sessions: list[dict] = field(default_factory=list)
    data_commands: int = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        if address.startswith("greylist@"):
            return "450 4.2.0 greylisted, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_commands += 1
        if self.data_replies:
            return self.data_replies.pop(0)
        self.messages.append(
            email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        )
        tls = server.transport.get_extra_info("ssl_object") is not None
        self.sessions.append({"tls": tls,
                              "authenticated": bool(session.authenticated),
                              "rcpt": list(envelope.rcpt_tos)})
        return "250 OK queued"


def _authenticator(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=auth_data.login == USER.encode()
                      and auth_data.password == PASSWORD.encode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def smtp_server(handler, **kwargs):
    last = None
    for _ in range(5):  # the free port can be taken between probe and bind
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        try:
            controller.start()
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - port race
            last = exc
            continue
        try:
            yield port
        finally:
            controller.stop()
        return
    raise RuntimeError(f"could not start the SMTP server: {last!r}")


def channel_for(settings, url: str) -> EmailChannel:
    return EmailChannel(settings.with_overrides(smtp_url=url))


def delivery(handout_pdf: bytes, ident: str = "dlv-0001", target: str = PATIENT, attempt: int = 1):
    return Delivery(
        id=ident,
        referral_id="ref-42",
        channel="email",
        target=target,
        documents={"handout.pdf": handout_pdf},
        subject="Your exercise plan from Lakeside Rehab",
        recipient_name="Ann Lee",
        attempt=attempt,
    )


def assert_well_formed(msg, handout_pdf: bytes, message_id: str) -> None:
    assert msg["Message-ID"] == message_id
    assert msg["Subject"] == "Your exercise plan from Lakeside Rehab"
    assert msg.get_content_type() == "multipart/mixed"
    body = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert body is not None and html is not None
    assert "Lakeside Rehab" in body.get_content() and "+1 763 555 0100" in body.get_content()
    assert "<strong>Lakeside Rehab</strong>" in html.get_content()
    attachments = list(msg.iter_attachments())
    assert len(attachments) == 1
    (pdf,) = attachments
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == "exercise-plan.pdf"
    data = pdf.get_content()
    assert data.startswith(b"%PDF") and data == handout_pdf


def test_starttls_and_auth(plugin_settings, tls_ca, handout_pdf):
    ca_path, server_context = tls_ca
    handler = Recorder()
    with smtp_server(handler, tls_context=server_context, require_starttls=True,
                     authenticator=_authenticator, auth_require_tls=True) as port:
        url = (f"smtp://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}"
               f"?starttls=require&cafile={quote(str(ca_path), safe='')}")
        channel = channel_for(plugin_settings, url)
        result = channel.send(delivery(handout_pdf))
    assert result.reference == "<delivery-dlv-0001@clinic.example>"
    assert result.detail["tls"] == "require"
    assert handler.sessions == [{"tls": True, "authenticated": True, "rcpt": [PATIENT]}]
    assert_well_formed(handler.messages[0], handout_pdf, result.reference)
    assert handler.messages[0]["To"] == f"Ann Lee <{PATIENT}>"


def test_implicit_tls_smtps(plugin_settings, tls_ca, handout_pdf):
    ca_path, server_context = tls_ca
    handler = Recorder()
    # aiosmtpd only knows STARTTLS as "TLS" for auth_require_tls; the socket is TLS here.
    with smtp_server(handler, ssl_context=server_context, authenticator=_authenticator,
                     auth_require_tls=False) as port:
        url = (f"smtps://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}"
               f"?cafile={quote(str(ca_path), safe='')}")
        result = channel_for(plugin_settings, url).send(delivery(handout_pdf))
    assert result.detail["tls"] == "implicit"
    assert handler.sessions[0]["tls"] and handler.sessions[0]["authenticated"]
    assert_well_formed(handler.messages[0], handout_pdf, result.reference)


def test_smtps_with_an_untrusted_certificate_is_permanent(plugin_settings, tls_ca, handout_pdf):
    _, server_context = tls_ca
    with smtp_server(Recorder(), ssl_context=server_context) as port:
        channel = channel_for(plugin_settings, f"smtps://127.0.0.1:{port}")
        with pytest.raises(PermanentChannelError, match="certificate"):
            channel.send(delivery(handout_pdf))
        # ?verify=false is for test servers only, and documented as such.
        assert channel_for(plugin_settings, f"smtps://127.0.0.1:{port}?verify=false").send(
            delivery(handout_pdf)).reference


def test_plain_smtp_without_auth(plugin_settings, handout_pdf):
    handler = Recorder()
    with smtp_server(handler) as port:
        result = channel_for(plugin_settings, f"smtp://127.0.0.1:{port}").send(delivery(handout_pdf))
    assert handler.sessions == [{"tls": False, "authenticated": False, "rcpt": [PATIENT]}]
    assert_well_formed(handler.messages[0], handout_pdf, result.reference)


def test_starttls_required_but_not_offered_is_permanent(plugin_settings, handout_pdf):
    handler = Recorder()
    with smtp_server(handler) as port:
        channel = channel_for(plugin_settings, f"smtp://127.0.0.1:{port}?starttls=require")
        with pytest.raises(PermanentChannelError, match="STARTTLS"):
            channel.send(delivery(handout_pdf))
        creds = channel_for(plugin_settings, f"smtp://{USER}:x@127.0.0.1:{port}")
        with pytest.raises(PermanentChannelError, match="without TLS"):
            creds.send(delivery(handout_pdf))
    assert handler.messages == []


def test_451_then_250_is_retried_with_the_same_message_id(plugin_settings, handout_pdf):
    handler = Recorder(data_replies=["451 4.3.0 local problem, try again"])
    with smtp_server(handler) as port:
        channel = channel_for(plugin_settings, f"smtp://127.0.0.1:{port}")
        with pytest.raises(TransientChannelError) as info:
            channel.send(delivery(handout_pdf, attempt=1))
        assert not info.value.permanent and "451" in info.value.message
        # The pipeline retries the same delivery (same id, next attempt).
        result = channel.send(delivery(handout_pdf, attempt=2))
    assert handler.data_commands == 2
    assert len(handler.messages) == 1
    assert handler.messages[0]["Message-ID"] == result.reference == "<delivery-dlv-0001@clinic.example>"
    assert channel.message_id(delivery(handout_pdf, attempt=3)) == result.reference


def test_550_is_permanent_and_the_error_has_no_phi(plugin_settings, handout_pdf):
    handler = Recorder(data_replies=["550 5.7.1 message rejected for ann.lee@example.org"])
    with smtp_server(handler) as port:
        channel = channel_for(plugin_settings, f"smtp://127.0.0.1:{port}")
        with pytest.raises(PermanentChannelError) as at_data:
            channel.send(delivery(handout_pdf))
        with pytest.raises(PermanentChannelError) as at_rcpt:
            channel.send(delivery(handout_pdf, target="nobody@example.org"))
        with pytest.raises(TransientChannelError, match="450"):
            channel.send(delivery(handout_pdf, target="greylist@example.org"))
    assert at_data.value.permanent and "550" in at_data.value.message
    assert at_rcpt.value.permanent and "550" in at_rcpt.value.message
    for error in (at_data.value, at_rcpt.value):
        assert "example.org" not in str(error) and "Ann" not in str(error)
    assert handler.messages == []


def test_connection_refused_is_transient(plugin_settings, handout_pdf):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(TransientChannelError, match="connect"):
            channel_for(plugin_settings, f"smtp://127.0.0.1:{port}").send(delivery(handout_pdf))
    # (A wrong password is not exercised live: aiosmtpd stalls failed AUTH until the timeout.)


def test_file_outbox_when_no_smtp_url(plugin_settings, handout_pdf):
    channel = EmailChannel(plugin_settings)  # embedded, REFFLOW_SMTP_URL empty
    first = channel.send(delivery(handout_pdf))
    again = channel.send(delivery(handout_pdf, attempt=2))
    files = list(plugin_settings.mail_outbox_dir.iterdir())
    assert [f.name for f in files] == ["dlv-0001.eml"]
    assert first.reference == again.reference and again.detail["already_written"] is True
    msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert_well_formed(msg, handout_pdf, first.reference)
    production = EmailChannel(plugin_settings.with_overrides(env="production"))
    with pytest.raises(PermanentChannelError, match="REFFLOW_SMTP_URL"):
        production.send(delivery(handout_pdf, ident="dlv-0002"))


def test_targets_and_urls_are_validated(plugin_settings):
    channel = EmailChannel(plugin_settings)
    assert channel.validate_target("Ann.Lee@Example.org") == "Ann.Lee@example.org"
    with pytest.raises(PermanentChannelError) as info:
        channel.validate_target("ann.lee@@example")
    assert "ann.lee" not in str(info.value)
    cfg = SmtpConfig.from_url("smtp://u%40x:p%2Fw@mail.example:587?starttls=required")
    assert (cfg.username, cfg.password, cfg.port, cfg.starttls) == ("u@x", "p/w", 587, "require")
    assert SmtpConfig.from_url("smtps://mail.example").port == 465
    broken = EmailChannel(plugin_settings.with_overrides(smtp_url="http://mail.example"))
    with pytest.raises(PermanentChannelError, match="smtp://"):
        broken.send(Delivery("d", "r", "email", PATIENT, {"handout.pdf": b"%PDF-"}, "s"))


@pytest.mark.parametrize("url, starttls", [
    ("smtp://mail.example:587", "require"),          # a remote server: the handout is PHI
    ("smtp://10.0.0.5:25", "require"),
    ("smtp://mail.example:587?starttls=auto", "auto"),  # relaxed only when the URL says so
    ("smtp://mailpit:1025?starttls=never", "never"),
    ("smtp://localhost:25", "auto"),                 # a relay on this machine
    ("smtp://127.0.0.1:1025", "auto"),
    ("smtp://[::1]:25", "auto"),
    ("smtp://127.0.0.1:25?starttls=require", "require"),
])
def test_starttls_is_required_unless_the_server_is_on_this_machine(url, starttls):
    assert SmtpConfig.from_url(url).starttls == starttls
