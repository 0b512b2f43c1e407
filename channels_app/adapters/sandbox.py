"""The sandbox: a provider for every channel that decides a message's fate by its recipient.

It stands in for a remote provider, so its "remote side" (posting receipts later) runs as a
Celery task, and its receipts travel through :func:`channels_app.receipts.ingest` like every
real provider's. That side is reached through blocking calls (the broker, the database, a log
file), so they run off the provider-call loop's thread (``asyncio.to_thread``).
"""

import asyncio
import json
import os
import uuid
from typing import Any, ClassVar

from celery import current_app

from channels_app.adapters.base import Adapter, OutboundMessage, RevokeOutcome, SendResult
from channels_app.errors import ErrorKind, ProviderError
from channels_app.sandbox import revocations
from channels_app.sandbox.fates import REVOCABLE_CHANNELS, Fate, fate_of, planned_receipts


class SandboxAdapter(Adapter):
    name: ClassVar[str] = "sandbox"
    channels: ClassVar[frozenset[str]] = frozenset(
        {"sms", "mms", "messenger", "viber_service_msg", "viber_service", "whatsapp", "rcs"}
    )
    revocable_channels: ClassVar[frozenset[str]] = REVOCABLE_CHANNELS

    async def send(self, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        result = await asyncio.to_thread(self._accept, message, config)
        # Fault injection: the message has left, but the answer is slow to come back.
        await asyncio.sleep(float(config.get("send_delay") or 0.0))
        return result

    def _accept(self, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        recipient = message.to
        fate = fate_of(recipient)
        if fate == Fate.REJECTED:
            _log_call(config, message, recipient, "rejected")
            if message.channel == "rcs":  # what RCS providers say of a phone without RCS
                raise ProviderError(
                    ErrorKind.PERMANENT,
                    "Recipient is not RCS-capable",
                    code=1300,
                    provider_code="1",
                )
            raise ProviderError(ErrorKind.PERMANENT, "Unroutable", code=1250, provider_code="1")
        if fate == Fate.FLAKY and message.attempt_number == 1:
            _log_call(config, message, recipient, "transient")
            raise ProviderError(
                ErrorKind.TRANSIENT, "Throttled", code=1000, provider_code="5", retry_after=0.5
            )
        provider_message_id = f"sbx-{uuid.uuid4()}"
        _log_call(config, message, recipient, "accepted", provider_message_id)
        self._schedule_receipts(message, fate, provider_message_id, config)
        return SendResult(
            provider_message_ids=[provider_message_id],
            response={"message_id": provider_message_id, "fate": fate.value},
        )

    async def revoke(
        self, provider_message_id: str, recipient: str, config: dict[str, Any]
    ) -> RevokeOutcome:
        """Withdraw an RCS message unless its delivered receipt went out first."""
        won = await asyncio.to_thread(revocations.claim, provider_message_id, revocations.REVOKED)
        return RevokeOutcome.REVOKED if won == revocations.REVOKED else RevokeOutcome.TOO_LATE

    @staticmethod
    def _schedule_receipts(
        message: OutboundMessage, fate: Fate, provider_message_id: str, config: dict[str, Any]
    ) -> None:
        plan = planned_receipts(
            fate,
            message.channel,
            deliver_after=float(config.get("deliver_after", 1.0)),
            read_after=float(config.get("read_after", 2.0)),
        )
        for receipt in plan:
            current_app.send_task(
                "sandbox.emit_receipt",
                (
                    provider_message_id,
                    message.client_ref,
                    receipt.status.value,
                    receipt.error_code,
                    receipt.error_reason,
                    config.get("connection_id", "sandbox"),  # its receipts change only its messages
                    message.channel in REVOCABLE_CHANNELS,
                ),
                countdown=receipt.after,
            )


def _log_call(
    config: dict[str, Any],
    message: OutboundMessage,
    recipient: str,
    outcome: str,
    provider_message_id: str = "",
) -> None:
    """Append one JSON line per call received to ``config["send_log"]``, if set.

    The fault-injection harness counts these to prove no attempt (``client_ref``) reached the
    provider twice. One ``write`` of a short line to an ``O_APPEND`` file is not interleaved
    with other processes' lines.
    """
    path = config.get("send_log")
    if not path:
        return
    line = json.dumps(
        {
            "client_ref": message.client_ref,
            "recipient": recipient,
            "channel": message.channel,
            "outcome": outcome,
            "provider_message_id": provider_message_id,
            "pid": os.getpid(),
        }
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
