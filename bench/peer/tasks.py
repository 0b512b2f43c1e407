"""Send a message, and schedule its expiry with a countdown: the textbook Celery way."""

import requests
from celery import shared_task
from django.conf import settings
from django.utils import timezone

from bench.peer.models import Message

session = requests.Session()


@shared_task(acks_late=True)
def send_message(message_id: int) -> None:
    message = Message.objects.get(id=message_id)
    if message.status:
        return
    sid = "ACPEER00000"
    response = session.post(
        f"{settings.PROVIDER_URL}/2010-04-01/Accounts/{sid}/Messages.json",
        data={"To": message.to, "From": message.sender, "Body": message.text},
        auth=(sid, "peer-token"),
        timeout=(5, 20),
    )
    if response.status_code >= 400:
        message.status = "rejected"
        message.save(update_fields=["status"])
        fail_over(message)
        return
    message.status, message.sent_at = "submitted", timezone.now()
    message.provider_id = response.json()["sid"]
    message.save(update_fields=["status", "sent_at", "provider_id"])
    if message.expiry_time:
        expire_message.apply_async((message.id,), countdown=message.expiry_time)


@shared_task(acks_late=True)
def expire_message(message_id: int) -> None:
    message = Message.objects.get(id=message_id)
    reached = {"delivered": ("delivered", "read"), "read": ("read",)}
    if message.status not in reached.get(message.condition_status or "", ()):
        fail_over(message)


def fail_over(message: Message) -> None:
    message.failed_over_at = timezone.now()
    message.save(update_fields=["failed_over_at"])
    following = message.run.messages.filter(index=message.index + 1).first()
    if following is None:
        message.run.status = "error"
        message.run.save(update_fields=["status"])
        return
    send_message.delay(following.id)
