from django.contrib import admin
from django.urls import include, path

from workflows_app.api import ops
from workflows_app.api.baseline import BaselineAcceptView

urlpatterns = [
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("webhooks/receipts/", include("channels_app.receipts.urls")),
    # Answers 404 unless BENCH_BASELINE_ENDPOINT is on (benchmarks only).
    path("bench/baseline", BaselineAcceptView.as_view(), name="bench-baseline"),
    path("", include("workflows_app.api.urls")),
]

handler400 = "workflows_app.api.problems.handler400"
handler403 = "workflows_app.api.problems.handler403"
handler404 = "workflows_app.api.problems.handler404"
handler500 = "workflows_app.api.problems.handler500"
