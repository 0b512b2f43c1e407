"""POST /runs starts a run; POST /receipts/twilio takes Twilio's status callbacks."""

import json

from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from bench.peer.models import Message, Run
from bench.peer.tasks import send_message


@csrf_exempt
def runs(request):
    body = json.loads(request.body)
    run = Run.objects.create()
    messages = [
        Message(
            run=run,
            index=index,
            sender=step["from"].get("number") or step["from"].get("id"),
            to=step["to"].get("number") or step["to"].get("id"),
            text=step["message"]["content"]["text"],
            expiry_time=step.get("failover", {}).get("expiry_time"),
            condition_status=step.get("failover", {}).get("condition_status"),
        )
        for index, step in enumerate(body["workflow"])
    ]
    Message.objects.bulk_create(messages)
    send_message.delay(messages[0].id)
    return JsonResponse({"workflow_id": run.id}, status=202)


@csrf_exempt
def twilio_receipt(request):
    status = {"delivered": "delivered", "read": "read", "undelivered": "undeliverable"}
    new = status.get(request.POST.get("MessageStatus", ""))
    if new:
        Message.objects.filter(provider_id=request.POST.get("MessageSid", "")).update(status=new)
        if new in ("delivered", "read"):
            Run.objects.filter(messages__provider_id=request.POST["MessageSid"]).update(
                status="completed"
            )
    return HttpResponse(status=204)


urlpatterns = [path("runs", runs), path("receipts/twilio", twilio_receipt)]
