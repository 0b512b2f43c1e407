from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("webhooks/receipts/", include("channels_app.receipts.urls")),
    path("", include("workflows_app.api.urls")),
]

handler400 = "workflows_app.api.problems.handler400"
handler403 = "workflows_app.api.problems.handler403"
handler404 = "workflows_app.api.problems.handler404"
handler500 = "workflows_app.api.problems.handler500"
