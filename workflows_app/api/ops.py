"""``/healthz``, ``/readyz`` and ``/metrics`` (docs/operations.md). Plain Django views: no
account authentication; ``/metrics`` wants ``Authorization: Bearer $METRICS_TOKEN``."""

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from workflows_app.services.health import readiness
from workflows_app.services.metrics import metrics_text


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving; checks nothing else."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database and broker answer and the scheduler ticked recently, else 503."""
    result = readiness()
    return JsonResponse(
        {"status": "ok" if result.ready else "unavailable", "checks": result.checks},
        status=200 if result.ready else 503,
    )


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        return HttpResponse("metrics are off: set METRICS_TOKEN\n", status=404)
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        return HttpResponse(
            "bearer token required\n", status=401, headers={"WWW-Authenticate": "Bearer"}
        )
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
