"""A webhook receiver on a real HTTP server, for the tests (tests/interop and
the browser tests): it records every request with its arrival time, answers
the statuses it is told to, and keeps each accepted message once by its
``webhook-id``, as Standard Webhooks receivers do."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


class Receiver:
    """An endpoint on a real HTTP server. ``answers`` are the statuses to give
    before answering 204; a receiver dedupes by ``webhook-id`` as the spec
    asks, so ``accepted`` holds each message once."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict, bytes]] = []
        self.accepted: dict[str, bytes] = {}
        self.accepted_at: dict[str, float] = {}  # time.time() of the first acceptance
        self.answers: list[int] = []
        self.lock = threading.Lock()
        self.port = 0
        self.server = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/refflow"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    receiver.requests.append((headers, body))
                    status = receiver.answers.pop(0) if receiver.answers else 204
                    if status < 300 and headers["webhook-id"] not in receiver.accepted:
                        receiver.accepted[headers["webhook-id"]] = body
                        receiver.accepted_at[headers["webhook-id"]] = time.time()
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self, secret: str) -> list[dict]:
        """Every accepted event once, verified with the secret, in arrival order
        (with its ``webhook-id`` and arrival time)."""
        with self.lock:
            requests = list(self.requests)
        out = []
        for headers, body in requests:
            message_id = headers["webhook-id"]
            if self.accepted.get(message_id) is body:
                event = Webhook(secret).verify(body, headers)
                out.append({**event, "webhook-id": message_id,
                            "received_at": self.accepted_at[message_id]})
        return out
