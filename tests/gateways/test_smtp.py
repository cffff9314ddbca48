"""SMTP against a real local SMTP server (aiosmtpd) on 127.0.0.1: the message as a mail
program reads it, one session kept across batches, every reply classified per recipient,
and the encrypted variants (STARTTLS with AUTH, implicit TLS) with a self-signed
certificate made for the test."""

import asyncio
import base64
import datetime
import email
import email.policy
import ipaddress
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateways.providers import Lifecycle, Outcome

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
SENDER = "Клуб «Магазин» <club@shop.example>"


class Recorder:
    """An aiosmtpd handler that keeps what it received and answers chosen codes for chosen
    recipients, at ``RCPT TO`` or after ``DATA``."""

    def __init__(self, rcpt: dict[str, str] | None = None, data: dict[str, str] | None = None):
        self.rcpt = rcpt or {}
        self.data = data or {}
        self.received: list[tuple[str, list[str], bytes]] = []
        self.connections: list[tuple] = []  # one entry per connection that began a transaction
        self.servers = []

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if session.peer not in self.connections:
            self.connections.append(session.peer)
            self.servers.append(server)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt:
            return self.rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for address in envelope.rcpt_tos:
            if address in self.data:
                return self.data[address]
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 Ok: queued"

    def message(self, index: int = 0) -> email.message.EmailMessage:
        return email.message_from_bytes(self.received[index][2], policy=email.policy.default)


class LocalController(Controller):
    """A Controller on a free port of 127.0.0.1 (port 0, read back once bound)."""

    def __init__(self, handler, **kwargs):
        super().__init__(handler, hostname="127.0.0.1", port=0, **kwargs)

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()

    def drop_connections(self, handler: Recorder) -> None:
        """Close, from the server side, every session the handler has seen (as a server
        does with an idle client)."""

        async def drop():
            for server in handler.servers:
                if server.transport is not None:
                    server.transport.close()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(drop(), self.loop).result(timeout=5)


@pytest.fixture
def smtp_server():
    started = []

    def start(handler: Recorder, **kwargs) -> LocalController:
        controller = LocalController(handler, **kwargs)
        controller.start()
        started.append(controller)
        return controller

    yield start
    for controller in started:
        if controller._thread is not None:  # not stopped by the test itself
            controller.stop()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 / localhost, written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def server_tls(tls_files):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    return context


def accept_one_login(server, session, envelope, mechanism, auth_data):
    # handled=False: aiosmtpd itself answers 535 to a wrong password
    return AuthResult(success=(auth_data.login, auth_data.password) == (b"club", b"s3cret"), handled=False)


def config(controller: LocalController, **extra) -> dict:
    return {
        "host": "127.0.0.1",
        "port": controller.port,
        "security": "none",
        "timeout": 5,
        "local_hostname": "back-office.shop.example",
        **extra,
    }


def newsletter() -> dict:
    return {
        "subject": "Бонусы сгорают завтра",
        "text": "Здравствуйте, Анна! У вас 500 бонусов.",
        "html": '<html><body><p>Здравствуйте, <b>Анна</b>!</p><img src="cid:logo"></body></html>',
        "images": [{"cid": "logo", "content_type": "image/png", "data": PNG}],
    }


def test_marketing_mail_arrives_as_text_html_with_inline_image_and_one_click_unsubscribe(
    smtp_server, make_adapter, outgoing
):
    # given
    handler = Recorder()
    controller = smtp_server(handler)
    adapter = make_adapter("smtp", config(controller), sender=SENDER)
    message = outgoing(
        "email",
        "anna@mail.example",
        newsletter(),
        marketing=True,
        unsubscribe_url="https://club.shop.example/u/opaque-token",
    )
    # when
    (result,) = adapter.send([message])
    # then: sent, and the provider id is the Message-ID the recipient's mail program sees
    assert result.outcome == Outcome.ACCEPTED and result.status == Lifecycle.SENT
    mail_from, rcpt_tos, _raw = handler.received[0]
    assert mail_from == "club@shop.example" and rcpt_tos == ["anna@mail.example"]
    mail = handler.message()
    assert mail["Message-ID"] == result.provider_message_id and "@shop.example>" in result.provider_message_id
    assert mail["Subject"] == "Бонусы сгорают завтра"
    assert mail["From"].addresses[0].display_name == "Клуб «Магазин»"
    assert mail["From"].addresses[0].addr_spec == "club@shop.example"
    assert mail["To"] == "anna@mail.example"
    assert mail["List-Unsubscribe"] == "<https://club.shop.example/u/opaque-token>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # text + html alternatives, the html part related to its inline image
    assert mail.get_content_type() == "multipart/alternative"
    text_part, related = mail.get_payload()
    assert text_part.get_content_type() == "text/plain"
    assert text_part.get_content().strip() == "Здравствуйте, Анна! У вас 500 бонусов."
    assert related.get_content_type() == "multipart/related"
    html_part, image = related.get_payload()
    assert "<b>Анна</b>" in html_part.get_content()
    assert image.get_content_type() == "image/png" and image["Content-ID"] == "<logo>"
    assert image.get_content() == base64.b64decode(PNG)


def test_transactional_mail_carries_no_unsubscribe_headers(smtp_server, make_adapter, outgoing):
    # given
    handler = Recorder()
    controller = smtp_server(handler)
    adapter = make_adapter("smtp", config(controller), sender=SENDER)
    message = outgoing("email", "anna@mail.example", {"subject": "Ваш код", "text": "Код: 4815"})
    # when
    (result,) = adapter.send([message])
    # then
    assert result.outcome == Outcome.ACCEPTED
    mail = handler.message()
    assert "List-Unsubscribe" not in mail and "List-Unsubscribe-Post" not in mail
    assert mail.get_content_type() == "text/plain" and mail.get_content().strip() == "Код: 4815"


def test_two_batches_share_one_smtp_session(smtp_server, make_adapter, outgoing):
    # given
    handler = Recorder()
    controller = smtp_server(handler)
    adapter = make_adapter("smtp", config(controller), sender=SENDER)
    # when
    first = adapter.send([outgoing("email", "a@mail.example", {"subject": "1", "text": "one"})])
    second = adapter.send(
        [
            outgoing("email", "b@mail.example", {"subject": "2", "text": "two"}),
            outgoing("email", "c@mail.example", {"subject": "3", "text": "three"}),
        ]
    )
    # then: three messages, one connection
    assert [r.outcome for r in first + second] == [Outcome.ACCEPTED] * 3
    assert len(handler.received) == 3
    assert len(handler.connections) == 1


def test_a_session_the_server_closed_is_reopened_without_failing_anything(
    smtp_server, make_adapter, outgoing
):
    # given: a session used once, then closed by the server (as an idle timeout does)
    handler = Recorder()
    controller = smtp_server(handler)
    adapter = make_adapter("smtp", config(controller), sender=SENDER)
    adapter.send([outgoing("email", "a@mail.example", {"subject": "1", "text": "one"})])
    controller.drop_connections(handler)
    # when
    (result,) = adapter.send([outgoing("email", "b@mail.example", {"subject": "2", "text": "two"})])
    # then
    assert result.outcome == Outcome.ACCEPTED
    assert [rcpt for _f, rcpt, _c in handler.received] == [["a@mail.example"], ["b@mail.example"]]
    assert len(handler.connections) == 2


def test_each_recipient_is_classified_by_the_servers_reply(smtp_server, make_adapter, outgoing):
    # given
    handler = Recorder(
        rcpt={
            "gone@mail.example": "550 5.1.1 <gone@mail.example>: Recipient address rejected: User unknown",
            "busy@mail.example": "451 4.3.0 Mailbox temporarily unavailable",
            "nobody@mail.example": "553 Requested action not taken: mailbox name not allowed",
        },
        data={"strict@mail.example": "554 5.7.1 Message rejected as spam by content filter"},
    )
    controller = smtp_server(handler)
    adapter = make_adapter("smtp", config(controller), sender=SENDER)
    addresses = [
        "gone@mail.example",
        "busy@mail.example",
        "strict@mail.example",
        "nobody@mail.example",
        "anna@mail.example",
    ]
    batch = [outgoing("email", a, {"subject": "Привет", "text": "текст"}) for a in addresses]
    # when
    results = {r.message_id: r for r in adapter.send(batch)}
    gone, busy, strict, nobody, anna = (results[m.id] for m in batch)
    # then: a hard bounce suppresses the address
    assert gone.outcome == Outcome.PERMANENT and gone.suppress_address
    assert "5.1.1" in gone.reason and "User unknown" in gone.reason
    # a temporary refusal is retried later
    assert busy.outcome == Outcome.TEMPORARY and not busy.suppress_address and "451" in busy.reason
    # a policy refusal fails this message but keeps the address
    assert strict.outcome == Outcome.PERMANENT and not strict.suppress_address and "5.7.1" in strict.reason
    # a bare 553 (bad mailbox name) is a hard bounce too
    assert nobody.outcome == Outcome.PERMANENT and nobody.suppress_address
    # and the refusals do not disturb the session: the last recipient gets its mail
    assert anna.outcome == Outcome.ACCEPTED
    assert [rcpt for _f, rcpt, _c in handler.received] == [["anna@mail.example"]]
    assert len(handler.connections) == 1


def test_starttls_with_login_delivers(smtp_server, make_adapter, outgoing, server_tls):
    # given: a server that wants STARTTLS first and a login after it
    handler = Recorder()
    controller = smtp_server(
        handler,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=accept_one_login,
        auth_required=True,
        auth_require_tls=True,
    )
    settings = config(controller, security="starttls", username="club", password="s3cret", verify_tls=False)
    adapter = make_adapter("smtp", settings, sender=SENDER)
    # when
    (result,) = adapter.send([outgoing("email", "anna@mail.example", {"subject": "Тест", "text": "Ёж"})])
    # then
    assert result.outcome == Outcome.ACCEPTED
    assert handler.message().get_content().strip() == "Ёж"


def test_wrong_password_fails_the_batch_temporarily_and_says_authentication(
    smtp_server, make_adapter, outgoing, server_tls
):
    # given
    handler = Recorder()
    controller = smtp_server(
        handler,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=accept_one_login,
        auth_required=True,
    )
    settings = config(controller, security="starttls", username="club", password="wrong", verify_tls=False)
    adapter = make_adapter("smtp", settings, sender=SENDER)
    batch = [outgoing("email", f"{n}@mail.example", {"subject": "s", "text": "t"}) for n in range(3)]
    # when
    results = adapter.send(batch)
    # then
    assert [r.outcome for r in results] == [Outcome.TEMPORARY] * 3
    assert "Authentication failed" in results[0].reason and "535" in results[0].reason
    assert handler.received == []


def test_an_untrusted_certificate_is_refused_while_verification_is_on(
    smtp_server, make_adapter, outgoing, server_tls
):
    # given: the self-signed certificate and the default (verifying) setting
    handler = Recorder()
    controller = smtp_server(handler, tls_context=server_tls, require_starttls=True)
    adapter = make_adapter("smtp", config(controller, security="starttls"), sender=SENDER)
    # when
    (result,) = adapter.send([outgoing("email", "anna@mail.example", {"subject": "s", "text": "t"})])
    # then
    assert result.outcome == Outcome.TEMPORARY and "certificate" in result.reason
    assert handler.received == []


def test_implicit_tls_delivers(smtp_server, make_adapter, outgoing, server_tls):
    # given: a server speaking TLS from the first byte (port 465 style)
    handler = Recorder()
    controller = smtp_server(handler, ssl_context=server_tls)
    adapter = make_adapter("smtp", config(controller, security="ssl", verify_tls=False), sender=SENDER)
    # when
    (result,) = adapter.send([outgoing("email", "anna@mail.example", {"subject": "s", "text": "t"})])
    # then
    assert result.outcome == Outcome.ACCEPTED and len(handler.received) == 1


def test_a_server_that_is_not_there_fails_the_batch_temporarily(make_adapter, outgoing, smtp_server):
    # given: the port of a server that has stopped
    controller = smtp_server(Recorder())
    port = controller.port
    controller.stop()
    adapter = make_adapter("smtp", {"host": "127.0.0.1", "port": port, "security": "none"}, sender=SENDER)
    batch = [outgoing("email", f"{n}@mail.example", {"subject": "s", "text": "t"}) for n in range(2)]
    # when
    results = adapter.send(batch)
    # then
    assert [r.outcome for r in results] == [Outcome.TEMPORARY] * 2
    assert "Cannot connect" in results[0].reason


@pytest.mark.parametrize(
    ("content", "ok"),
    [
        ({"subject": "Hi", "text": "t"}, True),
        ({"subject": "Hi", "html": "<p>h</p>"}, True),
        ({"subject": " ", "text": "t"}, False),
        ({"subject": "Hi", "text": "", "html": ""}, False),
    ],
)
def test_content_needs_a_subject_and_a_body(make_adapter, content, ok):
    adapter = make_adapter("smtp", {"host": "127.0.0.1"})
    assert (adapter.content_errors(content) == []) is ok


def test_a_line_break_in_a_header_cannot_inject_headers(smtp_server, make_adapter, outgoing):
    # given: a subject with a line break (a header injection attempt) ahead of a good message
    handler = Recorder()
    controller = smtp_server(handler)
    adapter = make_adapter("smtp", config(controller), sender=SENDER)
    batch = [
        outgoing("email", "a@mail.example", {"subject": "Hi\r\nBcc: x@evil.example", "text": "t"}),
        outgoing("email", "b@mail.example", {"subject": "Hi", "text": "t"}),
    ]
    # when
    results = adapter.send(batch)
    # then: both go, to their own recipient only, and the subject stays one header
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert [rcpt for _f, rcpt, _c in handler.received] == [["a@mail.example"], ["b@mail.example"]]
    first = handler.message(0)
    assert first["Bcc"] is None and first["Subject"] == "Hi  Bcc: x@evil.example"


def test_a_message_that_cannot_be_built_is_rejected_alone(smtp_server, make_adapter, outgoing):
    handler = Recorder()
    controller = smtp_server(handler)
    adapter = make_adapter("smtp", config(controller), sender=SENDER)
    batch = [
        outgoing("email", "a@mail.example", {"subject": "Hi", "text": "t", "headers": {"Bad Name": "x"}}),
        outgoing("email", "b@mail.example", {"subject": "Hi", "text": "t"}),
    ]
    bad, good = adapter.send(batch)
    assert bad.outcome == Outcome.REJECTED and good.outcome == Outcome.ACCEPTED
    assert [rcpt for _f, rcpt, _c in handler.received] == [["b@mail.example"]]
