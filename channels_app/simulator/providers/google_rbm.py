"""Google RCS Business Messaging: agent messages, capability checks, revokes, the OAuth 2.0
token endpoint a service account signs in at, and X-Goog-Signature-signed webhook events."""

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

import jwt

from channels_app.sandbox.fates import Fate, fate_of
from channels_app.simulator.providers.base import Answer, Request, Sent, SimProvider, Webhook
from channels_app.statuses import ReceiptStatus

FEATURES = [
    "RICHCARD_STANDALONE",
    "RICHCARD_CAROUSEL",
    "ACTION_DIAL",
    "ACTION_OPEN_URL",
    "ACTION_VIEW_LOCATION",
    "ACTION_SHARE_LOCATION",
]
TOKEN_PATHS = {"/token", "/oauth2/v4/token"}
TOKEN_LIFETIME = 3600
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def google_error(status: int, code: str, message: str) -> Answer:
    return Answer(status, {"error": {"code": status, "message": message, "status": code}})


class GoogleRbm(SimProvider):
    name = "google_rbm"
    send_path = re.compile(r"^/v1/phones/(\+?\d+)/agentMessages$")
    message_path = re.compile(r"^/v1/phones/(\+?\d+)/agentMessages/([^/]+)$")
    capability_path = re.compile(r"^/v1/phones/(\+?\d+)/capabilities$")
    events_path = re.compile(r"^/v1/phones/(\+?\d+)/agentEvents$")

    def matches(self, request: Request) -> bool:
        return request.method == "POST" and bool(self.send_path.match(request.path))

    def recipient(self, request: Request) -> str:
        match = self.send_path.match(request.path)
        return match.group(1).lstrip("+") if match else ""

    def client_ref(self, request: Request) -> str:
        return request.params().get("messageId", "")

    def accept(self, request: Request, webhook: Webhook | None, default_secret: str) -> Sent:
        body = request.json()
        content = body.get("contentMessage") or {}
        return Sent(
            self.name,
            [request.params().get("messageId", "")],
            self.recipient(request),
            request.params().get("agentId", ""),
            "rcs",
            (webhook.secret if webhook else "") or default_secret,
            webhook.url if webhook else "",
            client_ref=request.params().get("messageId", ""),
            extra={"kind": sorted(content) or sorted(body), "ttl": body.get("ttl")},
        )

    def accepted(self, sent: Sent) -> Answer:
        phone = "+" + sent.to
        return Answer(
            200,
            {
                "name": f"phones/{phone}/agentMessages/{sent.ids[0]}",
                "sendTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
            },
        )

    def rejected(self) -> Answer:  # "a user whose device doesn't support RCS": 404
        return google_error(404, "NOT_FOUND", "Requested entity was not found.")

    def transient(self, retry_after: float | None = None) -> Answer:
        headers = {"Retry-After": str(int(retry_after))} if retry_after else {}
        answer = google_error(503, "UNAVAILABLE", "The service is currently unavailable.")
        answer.headers = headers
        return answer

    def receipt(self, sent: Sent, status: ReceiptStatus) -> list[tuple[str, dict, bytes]]:
        kind = {ReceiptStatus.DELIVERED: "DELIVERED", ReceiptStatus.READ: "READ"}.get(status)
        if not kind or not sent.callback_url:
            return []
        event = {
            "senderPhoneNumber": "+" + sent.to,
            "eventType": kind,
            "eventId": uuid.uuid4().hex,
            "messageId": sent.ids[0],
            "sendTime": time.strftime("%Y-%m-%dT%H:%M:%S.123456789Z", time.gmtime()),
            "agentId": sent.sender,
        }
        return [envelope(event, sent.secret, sent.callback_url)]

    def other(self, request: Request, sim: Any) -> Answer | None:
        if request.method == "POST" and request.path in TOKEN_PATHS:
            return self.token(request, sim)
        message = self.message_path.match(request.path)
        capability = self.capability_path.match(request.path)
        events = self.events_path.match(request.path)
        if not (message or capability or events or self.matches(request)):
            return None
        if request.bearer() not in sim.tokens:
            return google_error(401, "UNAUTHENTICATED", "Request had invalid credentials.")
        if message and request.method == "DELETE":
            return self.revoke(message.group(1).lstrip("+"), message.group(2), sim)
        if capability and request.method == "GET":
            if fate_of(capability.group(1)) == Fate.REJECTED:
                return self.rejected()
            return Answer(200, {"features": FEATURES})
        if events and request.method == "POST":
            return Answer(200, {"name": f"phones/{events.group(1)}/agentEvents/x"} | request.json())
        return None  # a send: the server's send path answers it

    def token(self, request: Request, sim: Any) -> Answer:
        """The JWT bearer grant (RFC 7523) a service account uses; the assertion's signature
        is not checked (the simulator has no public key), its claims are."""
        form = {k: v[-1] for k, v in parse_qs(request.raw.decode()).items()}
        try:
            claims = jwt.decode(form.get("assertion", ""), options={"verify_signature": False})
        except jwt.PyJWTError:
            claims = {}
        if form.get("grant_type") != JWT_BEARER or not claims.get("iss") or not claims.get("scope"):
            return Answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT"})
        token = "sim-rbm-" + uuid.uuid4().hex
        with sim.lock:
            sim.tokens[token] = time.time() + TOKEN_LIFETIME
            sim.token_requests += 1
        return Answer(
            200, {"access_token": token, "expires_in": TOKEN_LIFETIME, "token_type": "Bearer"}
        )

    def revoke(self, recipient: str, message_id: str, sim: Any) -> Answer:
        outcome, fault = sim.revoke(self.name, message_id, recipient)
        if fault is not None:
            return fault
        if outcome == "revoked":
            return Answer(200, {})
        # Delivered already (or never sent): "the revocation attempt has failed".
        return google_error(404, "NOT_FOUND", "Requested entity was not found.")


def envelope(event: dict[str, Any], client_token: str, url: str) -> tuple[str, dict, bytes]:
    """A webhook POST as RBM sends it: the event base64-encoded in ``message.data``, signed
    with base64 HMAC-SHA512 of the decoded data keyed with the client token."""
    data = json.dumps(event).encode()
    signature = base64.b64encode(hmac.new(client_token.encode(), data, hashlib.sha512).digest())
    body = {
        "message": {
            "data": base64.b64encode(data).decode(),
            "messageId": str(uuid.uuid4().int)[:16],
            "publishTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        },
        "subscription": "projects/rbm-agent/subscriptions/rbm-agent-sub",
    }
    headers = {"Content-Type": "application/json", "X-Goog-Signature": signature.decode()}
    return url, headers, json.dumps(body).encode()
