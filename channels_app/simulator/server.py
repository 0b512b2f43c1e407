"""The provider simulator's HTTP server (its state: :mod:`channels_app.simulator.state`).

``POST`` on a provider's real send path answers as that provider would for the recipient's
sandbox fate (design.md, "Sandbox recipients"; :mod:`channels_app.sandbox.fates`), then posts
that provider's signed receipts to the registered webhook (or the callback URL the send
carried). Control endpoints, under ``/_simulator/``:

- ``POST /_simulator/webhooks`` ``{"provider", "url", "secret", "signature_method"}``: where
  (and with which secret) a provider's receipts go, like the provider's dashboard setting.
  Viber's own ``POST /pa/set_webhook`` works too (the auth token signs).
- ``POST /_simulator/faults`` ``{"recipient", "fault", "times": 1, "retry_after", "delay"}``:
  the next ``times`` sends to ``recipient`` (0 = all) meet ``fault``: ``http_500``,
  ``http_429``, ``slow`` (answer after ``delay``), ``reset`` (drop the connection after
  reading the request), ``timeout_after_accept`` (accept, then answer after ``delay``),
  ``malformed`` (accept, answer with an unreadable body), ``drop_receipts`` (accept, never
  call back; the status API still tells the truth). A ``recipient`` ending in ``*`` is a
  prefix: every recipient starting with it meets the fault, ``times`` times each (the
  longest matching prefix wins; an exact recipient beats every prefix).
- ``GET /_simulator/messages``: what was accepted; ``POST /_simulator/reset``.
- ``GET /_simulator/sends``: every send request received, in order, with the sender's
  reference (``client_ref``, where the provider's API carries one), the recipient, the fault
  met and the outcome (``accepted``, ``rejected``, ``transient`` or ``fault``). The same
  records go, one JSON line each, to the ``send_log`` file when one is given (the chaos
  harness counts them to prove no attempt reached a provider twice).
- ``POST /_simulator/latency`` ``{"seconds", "path": ""}``: answer sends after ``seconds``,
  all of them or those whose path starts with ``path`` (:mod:`~channels_app.simulator.pacing`).
- ``POST /_simulator/rate_limit`` ``{"per_second", "burst", "per": "account"}`` (or
  ``{"per_second": null}`` to lift it): sends above it are answered 429 with ``Retry-After``.
- ``GET /_simulator/stats``: TCP connections opened (HTTP/1.1 keep-alive lets a client reuse
  one), sends throttled with 429.
- Twilio's ``GET .../Messages/<sid>.json`` reports the simulated status (for polling).
- Revokes (Vonage ``PATCH /v1/messages/<uuid>``, RBM ``DELETE .../agentMessages/<id>``) stop
  an undelivered message's receipts; ``GET /_simulator/revokes`` lists every revoke request in
  order (``at`` comparable with the sends' ``at``). A fault registered for the recipient
  ``revoke:<number>`` (``slow``; any other answers 500) meets the next revokes instead of
  sends. RBM's token endpoint (``POST /token``) issues the bearer tokens its API requires.
"""

import contextlib
import io
import logging
import socket
import struct
import threading
import time
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from channels_app.sandbox.fates import Fate, fate_of
from channels_app.simulator.pacing import pacing_control, retry_after_header
from channels_app.simulator.providers import (
    PROVIDERS,
    Answer,
    Request,
    SimProvider,
    Twilio,
    Webhook,
)
from channels_app.simulator.records import FAULTS, Fault, SendRecord
from channels_app.simulator.state import Simulator

logger = logging.getLogger("channels_app.simulator")


class Handler(BaseHTTPRequestHandler):
    server: "SimulatorServer"
    # HTTP/1.1: a client may keep its connection open across sends, as real providers allow.
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # The status line and headers leave in one write and the body in another; on a kept-
        # alive connection Nagle's algorithm would hold the body until the client's delayed
        # ACK (40 ms on Linux), which no real provider adds to a send.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.simulator.pacing.connection_opened()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self.route("GET")

    def do_POST(self) -> None:
        self.route("POST")

    def do_PATCH(self) -> None:
        self.route("PATCH")

    def do_DELETE(self) -> None:
        self.route("DELETE")

    def route(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        request = Request(method, url.path, self.headers, raw, url.query)
        sim = self.server.simulator
        if request.path.startswith("/_simulator/"):
            return self.control(request, sim)
        if request.path == "/pa/set_webhook":
            token = self.headers.get("X-Viber-Auth-Token", "")
            sim.viber_webhooks[token] = str(request.json().get("url", ""))
            return self.answer(Answer(200, {"status": 0, "status_message": "ok"}))
        twilio_fetch = Twilio.fetch.match(request.path)
        if method == "GET" and twilio_fetch:
            sent = sim.messages.get(twilio_fetch.group(2))
            if sent is None:
                return self.answer(Answer(404, {"code": 20404, "message": "not found"}))
            return self.answer(Answer(200, Twilio().resource(sent)))
        for candidate in PROVIDERS:
            other = candidate.other(request, sim)
            if other is not None:
                return self.answer(other)
        provider = next((p for p in PROVIDERS if method == "POST" and p.matches(request)), None)
        if provider is None:
            return self.answer(Answer(404, {"error": f"no simulated API at {request.path}"}))
        self.send_for(provider, request, sim)

    def send_for(self, provider: SimProvider, request: Request, sim: Simulator) -> None:
        recipient = provider.recipient(request).removeprefix("whatsapp:").lstrip("+")
        fault = sim.take_fault(recipient)
        kind = fault.fault if fault else ""
        record = SendRecord(provider.name, recipient, provider.client_ref(request), kind)
        pacing = sim.pacing
        delay = pacing.latency_for(request.path)
        if delay:
            time.sleep(delay)
        wait = pacing.admit(provider.account(request), provider.sender(request))
        try:
            if wait:
                record.outcome = "throttled"
                return self.answer(provider.throttled(retry_after_header(wait)))
            self._send_for(provider, request, sim, fault, record)
        finally:
            sim.record(record)

    def _send_for(
        self,
        provider: SimProvider,
        request: Request,
        sim: Simulator,
        fault: Fault | None,
        record: SendRecord,
    ) -> None:
        kind = fault.fault if fault else ""
        record.outcome = "fault" if kind in ("reset", "http_500", "http_429") else "transient"
        if kind == "reset":
            return self.reset_connection()
        if kind == "http_500":
            return self.answer(Answer(500, {"error": "internal server error"}))
        if kind == "http_429":
            return self.answer(provider.transient(fault.retry_after if fault else None))
        if kind == "http_401":  # credentials refused, whatever was sent
            return self.answer(Answer(401, {"error": "unauthorized"}))
        if kind == "slow" and fault:
            time.sleep(fault.delay)
        recipient = record.recipient
        fate = fate_of(recipient)
        if fate == Fate.REJECTED and not provider.rejects_later(request):
            record.outcome = "rejected"
            return self.answer(provider.rejected())
        if fate == Fate.FLAKY and sim.first_time(provider.name, recipient):
            return self.answer(provider.transient(1))
        credential = request.headers.get("X-Viber-Auth-Token", "")
        sent = provider.accept(request, sim.webhook_for(provider.name, credential), sim.secret)
        record.outcome, record.provider_message_ids = "accepted", list(sent.ids)
        sim.remember(sent)
        sim.schedule_receipts(provider, sent, post=kind != "drop_receipts")
        if kind == "timeout_after_accept" and fault:
            time.sleep(fault.delay)
        if kind == "malformed":
            return self.answer(Answer(200, b"<html>upstream error</html>"))
        self.answer(provider.accepted(sent))

    def control(self, request: Request, sim: Simulator) -> None:
        body = request.json()
        if request.path == "/_simulator/health":
            return self.answer(Answer(200, {"ok": True}))
        if request.path == "/_simulator/reset":
            sim.reset()
            return self.answer(Answer(200, {"ok": True}))
        if request.path == "/_simulator/webhooks" and body.get("provider"):
            sim.webhooks[str(body["provider"])] = Webhook(
                str(body.get("url", "")),
                str(body.get("secret") or sim.secret),
                str(body.get("signature_method") or "md5hash"),
            )
            return self.answer(Answer(200, {"ok": True}))
        if request.path == "/_simulator/faults" and body.get("fault") in FAULTS:
            sim.faults[str(body.get("recipient", "")).lstrip("+")] = Fault(
                str(body["fault"]),
                int(body.get("times", 1)),
                body.get("retry_after"),
                float(body.get("delay", 0.0)),
            )
            return self.answer(Answer(200, {"ok": True}))
        answered = pacing_control(sim.pacing, request.path, body)
        if answered is not None:
            return self.answer(Answer(200, answered | {"sends": len(sim.sends)}))
        if request.path == "/_simulator/revokes":
            with sim.lock:
                revokes = [asdict(revoke) for revoke in sim.revokes]
            return self.answer(Answer(200, {"revokes": revokes, "tokens": sim.token_requests}))
        if request.path == "/_simulator/sends":
            with sim.lock:
                sends = [asdict(send) for send in sim.sends]
            return self.answer(Answer(200, {"sends": sends}))
        if request.path == "/_simulator/messages":
            with sim.lock:
                sent = {mid: asdict(s) | {"secret": "***"} for mid, s in sim.messages.items()}
            return self.answer(
                Answer(200, {"messages": sent, "receipts_posted": sim.receipts_posted})
            )
        self.answer(Answer(400, {"error": "unknown control request"}))

    def answer(self, answer: Answer) -> None:
        body = answer.encoded()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        # The client may have given up (its read timeout): that is the point of some faults.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def reset_connection(self) -> None:
        """Drop the connection with a TCP RST after reading the request: no answer at all."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
        self.wfile = io.BytesIO()  # whatever the handler still writes goes nowhere


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Hundreds of clients connect at once when the engine keeps hundreds of sends in flight;
    # socketserver's default backlog of 5 would drop their SYNs (a 1 s retransmit each).
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        super().__init__(address, Handler)
        self.simulator = simulator

    @property
    def base_url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://{host}:{port}"


def start_in_thread(
    simulator: Simulator, host: str = "127.0.0.1", port: int = 0
) -> SimulatorServer:
    """Start a server on a background thread; call ``server.shutdown()`` to stop it."""
    server = SimulatorServer((host, port), simulator)
    thread = threading.Thread(target=server.serve_forever, name="provider-simulator", daemon=True)
    thread.start()
    return server
