"""The provider simulator's HTTP server.

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
import json
import logging
import socket
import struct
import threading
import time
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests

from channels_app.sandbox.fates import Fate, fate_of, planned_receipts
from channels_app.simulator.pacing import Pacing, RateRule, pacing_control, retry_after_header
from channels_app.simulator.providers import (
    PROVIDERS,
    Answer,
    Request,
    Sent,
    SimProvider,
    Twilio,
    Webhook,
)
from channels_app.simulator.records import FAULTS, Fault, RevokeRecord, SendRecord
from channels_app.statuses import ReceiptStatus

logger = logging.getLogger("channels_app.simulator")


class Simulator:
    """The simulated providers' shared state. Thread-safe; one per server."""

    def __init__(
        self,
        *,
        callback_base: str = "",
        secret: str = "simulator-secret",
        deliver_after: float = 0.3,
        read_after: float = 0.6,
        send_log: str = "",
        latency: float = 0.0,
        rate_limit: RateRule | None = None,
    ) -> None:
        self.default_latency, self.default_rate_limit = latency, rate_limit
        self.callback_base = callback_base.rstrip("/")
        self.secret = secret
        self.deliver_after, self.read_after = deliver_after, read_after
        self.send_log = send_log
        self.lock = threading.Lock()
        # Issued RBM access tokens outlive resets, as Google's outlive a test (callers cache them).
        self.tokens: dict[str, float] = {}
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.webhooks: dict[str, Webhook] = {}
            self.viber_webhooks: dict[str, str] = {}
            self.faults: dict[str, Fault] = {}
            self.prefix_uses: dict[tuple[str, str], int] = {}
            self.sends: list[SendRecord] = []
            self.seen: dict[tuple[str, str], int] = {}
            self.messages: dict[str, Sent] = {}
            self.receipts_posted = 0
            self.pacing = Pacing(latency=self.default_latency, rule=self.default_rate_limit)
            self.revokes: list[RevokeRecord] = []
            self.token_requests = 0

    def webhook_for(self, provider: str, credential: str = "") -> Webhook | None:
        if provider == "viber" and credential in self.viber_webhooks:
            return Webhook(self.viber_webhooks[credential], credential)
        if provider in self.webhooks:
            return self.webhooks[provider]
        if self.callback_base:
            return Webhook(f"{self.callback_base}/webhooks/receipts/{provider}", self.secret)
        return None

    def take_fault(self, recipient: str) -> Fault | None:
        with self.lock:
            fault = self.faults.get(recipient)
            if fault is not None:
                if fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        del self.faults[recipient]
                return fault
            return self._take_prefix_fault(recipient)

    def _take_prefix_fault(self, recipient: str) -> Fault | None:
        """The fault of the longest ``prefix*`` matching ``recipient``, ``times`` per recipient."""
        prefixes = [k for k in self.faults if k.endswith("*") and recipient.startswith(k[:-1])]
        if not prefixes:
            return None
        key = max(prefixes, key=len)
        fault = self.faults[key]
        used = self.prefix_uses.get((key, recipient), 0)
        if fault.times > 0 and used >= fault.times:
            return None
        self.prefix_uses[(key, recipient)] = used + 1
        return fault

    def record(self, send: SendRecord) -> None:
        """Keep one received send, and append it to the send log file if there is one."""
        send.at = time.time()
        with self.lock:
            self.sends.append(send)
            if self.send_log:
                with open(self.send_log, "a") as log:
                    log.write(json.dumps(asdict(send)) + "\n")

    def first_time(self, provider: str, recipient: str) -> bool:
        with self.lock:
            count = self.seen.get((provider, recipient), 0)
            self.seen[(provider, recipient)] = count + 1
            return count == 0

    def remember(self, sent: Sent) -> None:
        with self.lock:
            for mid in sent.ids:
                self.messages[mid] = sent

    def schedule_receipts(self, provider: SimProvider, sent: Sent, post: bool) -> None:
        """Advance the message's status on the fate's schedule, posting receipts if ``post``."""
        plan = planned_receipts(fate_of(sent.to), sent.channel, self.deliver_after, self.read_after)
        for planned in plan:
            timer = threading.Timer(
                planned.after, self.emit, args=(provider, sent, planned.status, post)
            )
            timer.daemon = True
            timer.start()

    def revoke(self, provider: str, message_id: str, recipient: str) -> tuple[str, Answer | None]:
        """Withdraw an undelivered message: ``("revoked" | "too_late" | "unknown", None)``, or
        ``("fault", answer)`` when a ``revoke:<recipient>`` fault says how to fail instead."""
        fault = self.take_fault(f"revoke:{recipient}")
        record = RevokeRecord(
            provider, message_id, recipient, "fault", fault.fault if fault else ""
        )
        if fault and fault.fault == "slow":
            time.sleep(fault.delay)
        elif fault:
            record.at = time.time()
            with self.lock:
                self.revokes.append(record)
            return "fault", Answer(500, {"error": "internal server error"})
        with self.lock:
            sent = self.messages.get(message_id)
            if sent is None:
                record.outcome = "unknown"
            elif sent.status in ("delivered", "read"):
                record.outcome = "too_late"
            else:
                sent.status, record.outcome = "revoked", "revoked"
            record.at = time.time()
            self.revokes.append(record)
        return record.outcome, None

    def emit(self, provider: SimProvider, sent: Sent, status: ReceiptStatus, post: bool) -> None:
        with self.lock:
            if sent.status == "revoked":
                return  # withdrawn before delivery: the person never gets it
            sent.status = status.value
        if not post:
            return
        for url, headers, body in provider.receipt(sent, status):
            if url:
                self.deliver(url, headers, body)

    def deliver(self, url: str, headers: dict[str, str], body: bytes) -> None:
        """POST one receipt; retry a few times like providers do (they retry until 2xx)."""
        for attempt in range(4):
            try:
                response = requests.post(url, data=body, headers=headers, timeout=5)
                if response.status_code < 500:
                    with self.lock:
                        self.receipts_posted += 1
                    if response.status_code >= 300:
                        logger.warning("receipt to %s refused: %s", url, response.status_code)
                    return
            except requests.RequestException as error:
                logger.warning("receipt to %s failed: %s", url, error)
            time.sleep(0.3 * (attempt + 1))


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
