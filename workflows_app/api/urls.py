from django.urls import path
from drf_spectacular.views import (
    SpectacularJSONAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from workflows_app.api import views
from workflows_app.models import ApiFlavour

urlpatterns = [
    path("v0.1/messages", views.MessagesV01View.as_view(), name="messages_v0.1"),
    path("beta/messages", views.MessagesV01View.as_view(), name="messages_beta"),
    path("v1/messages", views.MessagesV1View.as_view(), name="messages_v1"),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="docs"),
    path("redoc", SpectacularRedocView.as_view(url_name="openapi"), name="redoc"),
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
