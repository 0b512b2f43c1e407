from django.urls import path

from workflows_app.api import views
from workflows_app.models import ApiFlavour

urlpatterns = []
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
