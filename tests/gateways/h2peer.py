"""A local HTTP/2 peer for adapter tests: cleartext HTTP/2 ("h2c" with prior knowledge) on
127.0.0.1, built on the ``h2`` protocol library.

It speaks nothing but HTTP/2: a client that opens with an HTTP/1.1 request line instead of
the connection preface is refused (and counted in ``errors``), so a request that reached
the handler really travelled as HTTP/2 frames. Each request is handed to a handler
``(H2Request) -> PeerResponse`` as in ``peers.HttpPeer``; ``requests`` keeps them all, and
``connections`` counts the TCP connections accepted (one for a keep-alive client).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from tests.gateways.peers import PeerRequest, PeerResponse


@dataclass
class H2Request(PeerRequest):
    http_version: str = "HTTP/2"
    pseudo: dict[str, str] = field(default_factory=dict)  # :method, :path, :scheme, :authority
    connection: int = 0  # which accepted connection carried it (1, 2, ...)
    stream_id: int = 0


H2Handler = Callable[[H2Request], PeerResponse]


class H2Peer:
    def __init__(self, handler: H2Handler):
        self.handler = handler
        self.requests: list[H2Request] = []
        self.errors: list[str] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.clients: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> H2Peer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.listener.close()
        with self.lock:
            clients = list(self.clients)
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()
        self.thread.join(timeout=2)

    def _accept(self) -> None:
        while True:
            try:
                client, _address = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
                self.clients.append(client)
            threading.Thread(target=self._serve, args=(client, number), daemon=True).start()

    def _serve(self, client: socket.socket, number: int) -> None:
        conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        streams: dict[int, tuple[dict[str, str], dict[str, str], bytearray]] = {}
        try:
            client.sendall(conn.data_to_send())
            while True:
                data = client.recv(65535)
                if not data:
                    return
                try:
                    events = conn.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    with self.lock:
                        self.errors.append(f"not HTTP/2: {exc}")
                    return
                for event in events:
                    if isinstance(event, h2.events.RequestReceived):
                        pseudo = {k: v for k, v in event.headers if k.startswith(":")}
                        headers: dict[str, str] = {}
                        for name, value in event.headers:
                            if not name.startswith(":"):
                                headers[name] = f"{headers[name]}, {value}" if name in headers else value
                        streams[event.stream_id] = (pseudo, headers, bytearray())
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id][2].extend(event.data)
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        pseudo, headers, body = streams.pop(event.stream_id)
                        self._respond(conn, event.stream_id, number, pseudo, headers, bytes(body))
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        client.sendall(conn.data_to_send())
                        return
                client.sendall(conn.data_to_send())
        except OSError:
            return
        finally:
            client.close()

    def _respond(self, conn, stream_id, number, pseudo, headers, body) -> None:
        parts = urlsplit(pseudo.get(":path", ""))
        request = H2Request(
            pseudo.get(":method", ""),
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            headers,
            body,
            pseudo=pseudo,
            connection=number,
            stream_id=stream_id,
        )
        with self.lock:
            self.requests.append(request)
        response = self.handler(request)
        payload = response.body
        extra = {k.lower(): v for k, v in response.headers.items()}
        if isinstance(payload, dict | list):
            payload = json.dumps(payload).encode()
            extra.setdefault("content-type", "application/json")
        elif isinstance(payload, str):
            payload = payload.encode()
        conn.send_headers(
            stream_id,
            [(":status", str(response.status)), *extra.items(), ("content-length", str(len(payload)))],
            end_stream=not payload,
        )
        if payload:
            size = conn.max_outbound_frame_size
            chunks = [payload[i : i + size] for i in range(0, len(payload), size)]
            for i, chunk in enumerate(chunks):
                conn.send_data(stream_id, chunk, end_stream=i == len(chunks) - 1)
