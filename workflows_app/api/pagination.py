"""Cursor pagination for run lists: newest first, stable while new runs arrive."""

import binascii
from base64 import b64decode
from datetime import UTC, datetime
from urllib.parse import parse_qs

from django.conf import settings
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination, _positive_int

# What DRF's encode_cursor writes: offset, reverse, position.
CURSOR_TOKENS = {"o", "r", "p"}


class WorkflowCursorPagination(CursorPagination):
    """``?cursor=`` (opaque, from ``next``/``previous``) and ``?page_size=`` (1-100).

    A cursor that this paginator did not make (not base64, a bad offset, a position that is
    not a datetime a database can store) is a 404 problem, as for any unknown page.
    """

    ordering = ("-created_at", "-id")
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request):
        self.page_size = settings.API_PAGE_SIZE
        return super().get_page_size(request)

    def decode_cursor(self, request) -> Cursor | None:
        """The cursor of ``?cursor=``, None without one, NotFound for one we did not make.

        Stricter than DRF's, which skips characters that are not base64, ignores unknown
        tokens (so junk reads as the first page) and hands the caller's position to the
        ``created_at`` filter unchecked (so ``2026-99-99`` fails in the database).
        """
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        try:
            text = b64decode(encoded.encode("ascii"), validate=True).decode("ascii")
            tokens = parse_qs(text, keep_blank_values=True, strict_parsing=True)
            if not tokens.keys() <= CURSOR_TOKENS or any(len(v) != 1 for v in tokens.values()):
                raise ValueError("not a cursor of ours")
            offset = _positive_int(tokens.get("o", ["0"])[0], cutoff=self.offset_cutoff)
            reverse = {"0": False, "1": True}[tokens.get("r", ["0"])[0]]
        except (ValueError, KeyError, binascii.Error):
            raise NotFound(self.invalid_cursor_message) from None
        position = tokens.get("p", [None])[0]
        if position is not None:
            position = self.checked_position(position)
        # The stubs say int; DRF keeps the ordering field's value, here a timestamp string.
        return Cursor(offset=offset, reverse=reverse, position=position)  # type: ignore[arg-type]

    def checked_position(self, position: str) -> str:
        """The position as a UTC timestamp string, or NotFound when it is none."""
        try:
            when = datetime.fromisoformat(position)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            # astimezone overflows for year 1 or 9999 with an offset: still "not a position".
            return str(when.astimezone(UTC))
        except (ValueError, OverflowError):
            raise NotFound(self.invalid_cursor_message) from None
