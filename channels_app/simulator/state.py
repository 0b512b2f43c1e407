"""The simulated providers' shared state: registered webhooks, pending faults, the sends and
revokes received, the messages accepted and their receipts' schedule (served over HTTP by
:mod:`channels_app.simulator.server`)."""

import json
import logging
import threading
import time
from dataclasses import asdict

import requests

from channels_app.sandbox.fates import fate_of, planned_receipts
from channels_app.simulator.pacing import Pacing, RateRule
from channels_app.simulator.providers import Answer, Sent, SimProvider, Webhook
from channels_app.simulator.records import Fault, RevokeRecord, SendRecord
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
