"""Cursor pagination for run lists: newest first, stable while new runs arrive."""

from django.conf import settings
from rest_framework.pagination import CursorPagination


class WorkflowCursorPagination(CursorPagination):
    """``?cursor=`` (opaque, from ``next``/``previous``) and ``?page_size=`` (1-100)."""

    ordering = ("-created_at", "-id")
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request):
        self.page_size = settings.API_PAGE_SIZE
        return super().get_page_size(request)
