"""A caller's webhook receiver on loopback that verifies our signatures with independent code:
PyJWT for Vonage's JWT and its ``payload_hash``, the ``standardwebhooks`` package for the
Standard Webhooks headers. It knows nothing of our signing module."""

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    jwt_claims: dict | None = None
    jwt_error: str = ""
    standard_ok: bool = False
    answered: int = 0

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """``answer(received)`` picks the status code for each request (200 by default)."""

    signature_secret: str
    webhook_secret: str
    answer: Callable[[Received], int] = lambda received: 200
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/status"

    def verify(self, headers: dict[str, str], body: bytes) -> Received:
        item = Received(headers=headers, body=body)
        token = headers.get("authorization", "").removeprefix("Bearer ")
        try:
            claims = jwt.decode(
                token, self.signature_secret, algorithms=["HS256"], options={"verify_iat": True}
            )
            if claims.get("payload_hash") != hashlib.sha256(body).hexdigest():
                raise jwt.InvalidTokenError("payload_hash does not match the body")
            item.jwt_claims = claims
        except jwt.InvalidTokenError as error:
            item.jwt_error = str(error)
        try:
            Webhook(self.webhook_secret).verify(body, headers)
            item.standard_ok = True
        except WebhookVerificationError:
            item.standard_ok = False
        return item

    def start(self, port: int = 0) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                item = receiver.verify(headers, body)
                item.answered = receiver.answer(item)
                receiver.received.append(item)
                self.send_response(item.answered)
                if item.answered in (301, 302, 307):
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data")
                if item.answered == 429:
                    self.send_header("Retry-After", "120")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def accepted(self) -> list[Received]:
        return [r for r in self.received if 200 <= r.answered < 300]
