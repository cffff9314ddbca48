"""A small SMSC for adapter tests: an SMPP 3.4 server on 127.0.0.1 built on smpplib's PDU
classes, answering the way the specification says an SMSC does.

It binds transceivers (checking system_id and password), answers enquire_link and unbind,
accepts submit_sm (recording every PDU and giving it a message id), and for each accepted
submit_sm asking for a receipt sends a deliver_sm delivery receipt (esm_class 0x04) with
both the TLVs and the Appendix B text. A test can make it answer chosen command_status
values for chosen destinations, drop its connections, ping the client, or hang up on the
n-th submit_sm without answering.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from smpplib import consts, smpp

from gateways.providers._sms import GSM7_BASIC

ROK = consts.SMPP_ESME_ROK
RINVBNDSTS = consts.SMPP_ESME_RINVBNDSTS
RINVPASWD = consts.SMPP_ESME_RINVPASWD
RINVSYSID = consts.SMPP_ESME_RINVSYSID
MESSAGE_STATES = {
    "ENROUTE": 1,
    "DELIVRD": 2,
    "EXPIRED": 3,
    "DELETED": 4,
    "UNDELIV": 5,
    "ACCEPTD": 6,
    "UNKNOWN": 7,
    "REJECTD": 8,
}


@dataclass
class Submit:
    """One submit_sm as the SMSC received it."""

    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    destination_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    esm_class: int
    data_coding: int
    registered_delivery: int
    validity_period: str
    short_message: bytes
    message_id: str = ""  # given in submit_sm_resp; empty when refused
    status: int = ROK  # the command_status answered; -1: not answered (the SMSC hung up)

    @property
    def udh(self) -> bytes:
        return self.short_message[: self.short_message[0] + 1] if self.esm_class & 0x40 else b""

    @property
    def text(self) -> str:
        """The part's text (GSM-7 here is one septet per octet, as the client sends it)."""
        body = self.short_message[len(self.udh) :]
        if self.data_coding == 0x08:
            return body.decode("utf-16-be")
        return gsm7_decode(body)


def gsm7_decode(data: bytes) -> str:
    extension = {
        0x0A: "\f",
        0x14: "^",
        0x28: "{",
        0x29: "}",
        0x2F: "\\",
        0x3C: "[",
        0x3D: "~",
        0x3E: "]",
        0x40: "|",
        0x65: "€",
    }
    out, escaped = [], False
    for octet in data:
        if escaped:
            out.append(extension[octet])
            escaped = False
        elif octet == 0x1B:
            escaped = True
        else:
            out.append(GSM7_BASIC[octet])
    if escaped:
        raise ValueError("the part ends inside an escape pair")
    return "".join(out)


class _Sequence:
    """What smpplib's PDU classes ask of a ``client``: the next sequence number."""

    def __init__(self):
        self.sequence = 0
        self.lock = threading.Lock()

    def next_sequence(self) -> int:
        with self.lock:
            self.sequence += 1
            return self.sequence


class _Connection:
    def __init__(self, smsc: Smsc, sock: socket.socket):
        self.smsc = smsc
        self.sock = sock
        self.bound = False
        self.write_lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def send(self, pdu) -> None:
        with self.write_lock:
            self.sock.sendall(pdu.generate())

    def recv_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def serve(self) -> None:
        try:
            if self.smsc.tls is not None:
                self.sock = self.smsc.tls.wrap_socket(self.sock, server_side=True)
            while True:
                header = self.recv_exact(16)
                length = struct.unpack(">L", header[:4])[0]
                body = self.recv_exact(length - 16) if length > 16 else b""
                pdu = smpp.parse_pdu(header + body, client=self.smsc.seq, allow_unknown_opt_params=True)
                if not self.handle(pdu):
                    break
        except (OSError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self.close()
            with self.smsc.lock:
                if self in self.smsc.connections:
                    self.smsc.connections.remove(self)

    def respond(self, request, command: str, status: int = ROK, **fields) -> None:
        response = smpp.make_pdu(command, client=self.smsc.seq, status=status, **fields)
        response.sequence = request.sequence
        self.send(response)

    def handle(self, pdu) -> bool:
        smsc, command = self.smsc, pdu.command
        smsc.received.append(command)
        if command in ("bind_transceiver", "bind_transmitter", "bind_receiver"):
            system_id, password = _s(pdu.system_id), _s(pdu.password)
            status = (
                RINVSYSID if system_id != smsc.system_id else RINVPASWD if password != smsc.password else ROK
            )
            with smsc.lock:
                smsc.binds.append((system_id, status))
            self.bound = status == ROK
            fields = {"system_id": "FAKESMSC"} if self.bound else {}
            self.respond(pdu, command + "_resp", status, **fields)
            if self.bound and command != "bind_transmitter":
                with smsc.lock:
                    stored, smsc.stored = smsc.stored, []
                for record in stored:
                    self.send(smsc.receipt(record))
        elif command == "enquire_link":
            self.respond(pdu, "enquire_link_resp")
        elif command == "unbind":
            self.respond(pdu, "unbind_resp")
            return False
        elif command == "submit_sm":
            return self.submit(pdu)
        elif command.endswith("_resp"):
            with smsc.lock:
                smsc.responses.append((command, pdu.status))
        else:
            self.respond(pdu, "generic_nack", consts.SMPP_ESME_RINVCMDID)
        return True

    def submit(self, pdu) -> bool:
        smsc = self.smsc
        record = Submit(
            source_addr=_s(pdu.source_addr),
            source_addr_ton=pdu.source_addr_ton or 0,
            source_addr_npi=pdu.source_addr_npi or 0,
            destination_addr=_s(pdu.destination_addr),
            dest_addr_ton=pdu.dest_addr_ton or 0,
            dest_addr_npi=pdu.dest_addr_npi or 0,
            esm_class=pdu.esm_class or 0,
            data_coding=pdu.data_coding or 0,
            registered_delivery=pdu.registered_delivery or 0,
            validity_period=_s(pdu.validity_period),
            short_message=pdu.short_message or b"",
        )
        with smsc.lock:
            smsc.submits.append(record)
            if smsc.hang_up_on == len(smsc.submits):
                record.status = -1
                return False
            record.status = RINVBNDSTS if not self.bound else smsc.answer_for(record.destination_addr)
            if record.status == ROK:
                smsc.counter += 1
                record.message_id = smsc.message_id(smsc.counter)
        self.respond(
            pdu,
            "submit_sm_resp",
            record.status,
            **({"message_id": record.message_id} if record.message_id else {}),
        )
        if record.status == ROK and record.registered_delivery & 0x01 and smsc.receipts:
            self.send(smsc.receipt(record))
        return True


def _s(value) -> str:
    if value is None:
        return ""
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


class Smsc:
    """``with Smsc() as smsc:`` serves on ``smsc.host``/``smsc.port`` until the block ends."""

    def __init__(
        self,
        system_id: str = "shop",
        password: str = "secret",
        *,
        stat: str = "DELIVRD",
        receipts: bool = True,
        receipt_tlvs: bool = True,
        message_id: Callable[[int], str] = lambda n: f"{7_000_000 + n}",
        receipt_id: Callable[[str], str] = lambda message_id: message_id,
        tls: ssl.SSLContext | None = None,
    ):
        self.system_id, self.password = system_id, password
        self.stat = stat  # the receipt's stat unless ``stats`` names the destination
        self.stats: dict[str, tuple[str, int]] = {}  # destination -> (stat, err)
        self.receipts, self.receipt_tlvs = receipts, receipt_tlvs
        self.message_id, self.receipt_id = message_id, receipt_id
        self.tls = tls
        self.seq = _Sequence()
        self.lock = threading.Lock()
        self.connections: list[_Connection] = []
        self.binds: list[tuple[str, int]] = []
        self.submits: list[Submit] = []
        self.received: list[str] = []  # command names, in arrival order
        self.responses: list[tuple[str, int]] = []  # responses the client sent (command, status)
        self.failures: dict[str, tuple[int, int | None]] = {}  # destination -> (status, times left)
        self.counter = 0
        self.hang_up_on: int | None = None  # close the connection on the n-th submit_sm, unanswered
        self.stored: list[Submit] = []  # receipts waiting for the next receiver to bind

    # --- what the test tells it ------------------------------------------------------
    def fail(self, destination: str, status: int, *, times: int | None = None) -> None:
        """Answer ``status`` to submit_sm for ``destination``: ``times`` times, or always."""
        with self.lock:
            self.failures[destination] = (status, times)

    def answer_for(self, destination: str) -> int:
        status, left = self.failures.get(destination, (ROK, None))
        if left is not None:
            if left <= 0:
                return ROK
            self.failures[destination] = (status, left - 1)
        return status

    def receipt_for(self, destination: str, stat: str, err: int = 0) -> None:
        self.stats[destination] = (stat, err)

    def wait(self, condition: Callable[[], bool], timeout: float = 2.0) -> bool:
        """Whether ``condition()`` holds within ``timeout`` (the server thread may lag)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def deliver_on_bind(self, record: Submit) -> None:
        """Keep ``record``'s receipt for the next bind, as an SMSC keeps unacknowledged ones."""
        with self.lock:
            self.stored.append(record)

    def drop(self) -> None:
        """Close every client connection now, as a restarting SMSC would."""
        with self.lock:
            connections = list(self.connections)
        for connection in connections:
            connection.close()
            connection.thread.join(timeout=2)

    def send_raw(self, data: bytes) -> None:
        """Send ``data`` as it is to every bound client."""
        with self.lock:
            connections = [c for c in self.connections if c.bound]
        for connection in connections:
            with connection.write_lock:
                connection.sock.sendall(data)

    def ping(self) -> None:
        """Send enquire_link to every bound client."""
        with self.lock:
            connections = [c for c in self.connections if c.bound]
        for connection in connections:
            connection.send(smpp.make_pdu("enquire_link", client=self.seq))

    def receipt(self, record: Submit):
        stat, err = self.stats.get(record.destination_addr, (self.stat, 0 if self.stat == "DELIVRD" else 1))
        now = datetime.now(UTC)
        rid = self.receipt_id(record.message_id)
        text = (
            f"id:{rid} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
            f"submit date:{(now - timedelta(seconds=5)):%y%m%d%H%M} done date:{now:%y%m%d%H%M} "
            f"stat:{stat} err:{err:03d} text:"
        )
        fields = {}
        if self.receipt_tlvs:
            fields = {"receipted_message_id": rid, "message_state": MESSAGE_STATES[stat]}
            if err:
                fields["network_error_code"] = bytes([3]) + err.to_bytes(2, "big")
        return smpp.make_pdu(
            "deliver_sm",
            client=self.seq,
            source_addr_ton=record.dest_addr_ton,
            source_addr_npi=record.dest_addr_npi,
            source_addr=record.destination_addr,
            dest_addr_ton=record.source_addr_ton,
            dest_addr_npi=record.source_addr_npi,
            destination_addr=record.source_addr,
            esm_class=0x04,
            data_coding=0,
            short_message=text.encode("ascii"),
            **fields,
        )

    # --- serving ---------------------------------------------------------------------
    def __enter__(self) -> Smsc:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.host, self.port = self.listener.getsockname()
        self.accepting = threading.Thread(target=self._accept, daemon=True)
        self.accepting.start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                sock, _addr = self.listener.accept()
            except OSError:
                return
            connection = _Connection(self, sock)
            with self.lock:
                self.connections.append(connection)
            connection.thread.start()

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        self.drop()
        self.accepting.join(timeout=2)


def tls_context(hostname: str = "localhost") -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for ``hostname``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context.load_cert_chain(cert_file, key_file)
    return context
