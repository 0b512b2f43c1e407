from django.contrib import admin
from django.urls import include, path

from workflows_app.api import ops

urlpatterns = [
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("webhooks/receipts/", include("channels_app.receipts.urls")),
    path("", include("workflows_app.api.urls")),
]

handler400 = "workflows_app.api.problems.handler400"
handler403 = "workflows_app.api.problems.handler403"
handler404 = "workflows_app.api.problems.handler404"
handler500 = "workflows_app.api.problems.handler500"
