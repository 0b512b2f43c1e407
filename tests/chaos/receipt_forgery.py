"""Receipts for the ``receipt-endpoints-forged-stale-oversized`` scenario, built from what the
provider simulator accepted (``GET /_simulator/messages``) with the simulator's own providers
(channels_app/simulator/providers/, which sign as the providers document), then re-signed
here where a scenario needs a wrong secret, an old timestamp or a padded body.
"""

import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import jwt
import requests

from channels_app.sandbox.fates import fate_of, planned_receipts
from channels_app.simulator.providers import (
    PROVIDERS,
    Sent,
    hub_signature,
    twilio_signature,
    vonage_sms_sig,
)
from channels_app.statuses import ReceiptStatus
from tests.chaos.providers import SECRETS, Simulated

BY_NAME = {p.name: p for p in PROVIDERS}
# Statuses a forged receipt may claim, in order of preference: the first that the recipient's
# fate never produces and the provider can express.
FORGEABLE = (ReceiptStatus.UNDELIVERABLE, ReceiptStatus.READ, ReceiptStatus.DELIVERED)
STALE = {"vonage_sms", "vonage_messages"}  # their signatures carry the time they were made
STALE_AGE = 2 * 3600  # past RECEIPT_MAX_AGE (default one hour)
OVERSIZE = 70 * 1024  # past RECEIPT_MAX_BODY_BYTES (default 64 KiB)
GENUINE = {200}
REFUSED = {"forged": {401, 403}, "stale": {403}, "oversized": {413}}


@dataclass
class ReceiptRequest:
    url: str
    headers: dict[str, str]
    body: bytes


def accepted(simulated: Simulated) -> list[Sent]:
    """Every message the simulator accepted so far, with its receipts' real signing secret."""
    response = requests.get(f"{simulated.base_url}/_simulator/messages", timeout=5)
    found: dict[str, Sent] = {}
    for fields in response.json()["messages"].values():
        sent = Sent(**{**fields, "secret": simulated.secret(fields["provider"])})
        found[sent.ids[0]] = sent
    return list(found.values())


def abuses(simulated: Simulated, sent: Sent, rng: random.Random) -> Iterator:
    """(kind, the answers expected, request) for one accepted message, in a random order."""
    provider = BY_NAME[sent.provider]
    planned = [p.status for p in planned_receipts(fate_of(sent.to), sent.channel, 0, 0)]
    batch = []
    for status in planned:
        for url, headers, body in provider.receipt(sent, status):
            if not url:
                continue
            batch += [("genuine", GENUINE, ReceiptRequest(url, headers, body))] * rng.randint(1, 3)
    impossible = next(
        (s for s in FORGEABLE if s not in planned and provider.receipt(sent, s)), None
    )
    if impossible is not None:
        for url, _, body in provider.receipt(sent, impossible):
            if not url:
                continue
            batch.append(("forged", REFUSED["forged"], resign(sent, url, body, secret="wrong")))
            batch.append(("oversized", REFUSED["oversized"], resign(sent, url, body, pad=True)))
            if sent.provider in STALE:
                stale = resign(sent, url, body, at=time.time() - STALE_AGE)
                batch.append(("stale", REFUSED["stale"], stale))
    rng.shuffle(batch)
    yield from batch


def resign(
    sent: Sent, url: str, body: bytes, *, secret: str = "", at: float = 0, pad: bool = False
) -> ReceiptRequest:
    """``body`` (a receipt ``sent``'s provider built) signed again with ``secret`` (default:
    the real one), made at ``at`` (default: now), padded past the size limit if ``pad``."""
    secret = secret or sent.secret
    at = at or time.time()
    if sent.provider in ("vonage_sms", "twilio"):
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        if pad:
            params["padding"] = "x" * OVERSIZE
        if sent.provider == "twilio":
            signature = twilio_signature(secret, url, params)
            headers = {"X-Twilio-Signature": signature}
        else:
            params.pop("sig", None)
            params["timestamp"] = str(int(at))
            method = SECRETS["vonage_sms"]["signature_method"]
            params["sig"] = vonage_sms_sig(params, secret, method)
            headers = {}
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return ReceiptRequest(url, headers, urlencode(params).encode())
    payload = json.loads(body)
    if pad:
        payload["padding"] = "x" * OVERSIZE
    raw = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if sent.provider in ("messenger", "whatsapp"):
        headers["X-Hub-Signature-256"] = hub_signature(secret, raw)
    elif sent.provider == "viber":
        headers["X-Viber-Content-Signature"] = hmac.new(
            secret.encode(), raw, hashlib.sha256
        ).hexdigest()
    else:  # vonage_messages: a JWT over the body's hash
        claims = {
            "iat": int(at),
            "jti": str(uuid.uuid4()),
            "iss": "Vonage",
            "payload_hash": hashlib.sha256(raw).hexdigest(),
            "application_id": sent.extra.get("application_id", ""),
        }
        headers["Authorization"] = "Bearer " + jwt.encode(claims, secret, algorithm="HS256")
    return ReceiptRequest(url, headers, raw)
