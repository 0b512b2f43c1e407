from pathlib import Path

import drf_spectacular_sidecar
from django.urls import path
from django.views.static import serve
from drf_spectacular.views import (
    SpectacularJSONAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from workflows_app.api import views
from workflows_app.models import ApiFlavour

SIDECAR_ASSETS = (
    Path(drf_spectacular_sidecar.__file__).parent / "static" / "drf_spectacular_sidecar"
)

urlpatterns = [
    path("v0.1/messages", views.MessagesV01View.as_view(), name="messages_v0.1"),
    path("beta/messages", views.MessagesV01View.as_view(), name="messages_beta"),
    path("v1/messages", views.MessagesV1View.as_view(), name="messages_v1"),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="docs"),
    path("redoc", SpectacularRedocView.as_view(url_name="openapi"), name="redoc"),
    # The docs pages' JS/CSS, served from the sidecar package so /docs works offline and under
    # gunicorn without a static-files server (no CDN is used).
    path(
        "static/drf_spectacular_sidecar/<path:path>",
        serve,
        {"document_root": SIDECAR_ASSETS},
        name="docs-assets",
    ),
]
for prefix, flavour in (
    ("beta/workflows", ApiFlavour.WORKFLOWS),
    ("v0.1/dispatch", ApiFlavour.DISPATCH),
):
    name = flavour.value
    urlpatterns += [
        path(prefix, views.WorkflowListView.as_view(flavour=flavour), name=f"{name}-list"),
        path(
            f"{prefix}/<str:workflow_id>",
            views.WorkflowDetailView.as_view(flavour=flavour),
            name=f"{name}-detail",
        ),
        path(
            f"{prefix}/<str:workflow_id>/cancel",
            views.WorkflowCancelView.as_view(flavour=flavour),
            name=f"{name}-cancel",
        ),
    ]
