"""Twilio's Messages API (X-Twilio-Signature status callbacks)."""

import base64
import hashlib
import hmac
import re
import uuid
from typing import Any
from urllib.parse import urlencode

from channels_app.simulator.providers.base import (
    Answer,
    Request,
    Sent,
    SimProvider,
    Webhook,
)
from channels_app.statuses import ReceiptStatus


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    signed = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(
        hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    ).decode()


TWILIO_STATUS = {
    ReceiptStatus.DELIVERED: "delivered",
    ReceiptStatus.READ: "read",
    ReceiptStatus.UNDELIVERABLE: "undelivered",
    ReceiptStatus.SUBMITTED: "sent",
}


class Twilio(SimProvider):
    name = "twilio"
    path = re.compile(r"^/2010-04-01/Accounts/(\w+)/Messages\.json$")
    fetch = re.compile(r"^/2010-04-01/Accounts/(\w+)/Messages/(\w+)\.json$")

    def matches(self, request: Request) -> bool:
        return request.method == "POST" and bool(self.path.match(request.path))

    def recipient(self, request: Request) -> str:
        return request.form().get("To", "")

    def accept(self, request: Request, webhook: Webhook | None, default_secret: str) -> Sent:
        form = request.form()
        account_sid, auth_token = request.basic()
        kind = "mms" if form.get("MediaUrl") else "sms"
        return Sent(
            self.name,
            [("MM" if kind == "mms" else "SM") + uuid.uuid4().hex],
            form.get("To", ""),
            form.get("From", ""),
            kind,
            auth_token,
            form.get("StatusCallback") or (webhook.url if webhook else ""),
            extra={"account_sid": account_sid},
        )

    def accepted(self, sent: Sent) -> Answer:
        return Answer(201, self.resource(sent))

    def resource(self, sent: Sent) -> dict[str, Any]:
        status = {"submitted": "sent"}.get(
            sent.status, TWILIO_STATUS.get(ReceiptStatus(sent.status), sent.status)
        )
        return {
            "sid": sent.ids[0],
            "account_sid": sent.extra.get("account_sid"),
            "to": sent.to,
            "from": sent.sender,
            "status": status,
            "error_code": 30003 if status == "undelivered" else None,
            "num_segments": "1",
            # Twilio prices a message once it has one (negative: a charge); null before.
            "price": "-0.00750" if status in ("delivered", "read", "undelivered") else None,
            "price_unit": "USD",
        }

    def rejected(self) -> Answer:
        return Answer(
            400,
            {
                "code": 21211,
                "message": "The 'To' number is not a valid phone number.",
                "more_info": "https://www.twilio.com/docs/errors/21211",
                "status": 400,
            },
        )

    def transient(self, retry_after: float | None = None) -> Answer:
        headers = {"Retry-After": str(int(retry_after))} if retry_after else {}
        return Answer(429, {"code": 20429, "message": "Too Many Requests", "status": 429}, headers)

    def receipt(self, sent: Sent, status: ReceiptStatus) -> list[tuple[str, dict, bytes]]:
        if not sent.callback_url:
            return []
        params = {
            "MessageSid": sent.ids[0],
            "SmsSid": sent.ids[0],
            "MessageStatus": TWILIO_STATUS[status],
            "SmsStatus": TWILIO_STATUS[status],
            "AccountSid": sent.extra.get("account_sid", ""),
            "From": sent.sender,
            "To": sent.to,
            "ApiVersion": "2010-04-01",
        }
        if status == ReceiptStatus.UNDELIVERABLE:
            params["ErrorCode"] = "30003"
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(sent.secret, sent.callback_url, params),
        }
        return [(sent.callback_url, headers, urlencode(params).encode())]
