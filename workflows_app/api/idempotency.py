"""``Idempotency-Key`` on POST: a repeat gets the first answer and creates nothing.

Contract of :func:`idempotent`: without the header it just runs the handler. With it, the key is
claimed by inserting an :class:`~workflows_app.models.IdempotencyKey` row in the same transaction
as the work, so the unique (account, key) constraint decides races: a concurrent request with
the same key blocks on the insert until the first commits, then replays its answer. Only a 2xx
answer is kept; any other rolls back with the key, so the caller may retry. Within
``IDEMPOTENCY_KEY_TTL`` (24 h) the same key with another body or endpoint is a 422 problem.
"""

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from rest_framework.request import Request
from rest_framework.response import Response

from workflows_app.api.auth import request_account
from workflows_app.api.problems import InvalidParameter, Problem, problem_body
from workflows_app.models import Account, IdempotencyKey
from workflows_app.services.clock import db_now

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def idempotent(request: Request, handler: Callable[[], Response]) -> Response:
    """Run ``handler`` at most once per (account, Idempotency-Key); see the module docstring."""
    key = request.headers.get(HEADER)
    if key is None:
        return handler()
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise InvalidParameter(HEADER, "Must be 1-255 printable ASCII characters.")
    fingerprint = _fingerprint(request)
    account = request_account(request)
    with transaction.atomic():
        claimed, row = _claim(account, key, request.path, fingerprint)
        if not claimed:
            return _replay(row, request.path, fingerprint)
        response = handler()
        if not 200 <= response.status_code < 300:
            transaction.set_rollback(True)
            return response
        row.response_status = response.status_code
        row.response_body = response.data
        row.save(update_fields=["response_status", "response_body"])
    return response


def _fingerprint(request: Request) -> str:
    """A hash of the parsed body, so key order and whitespace do not make a body differ."""
    canonical = json.dumps(request.data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _claim(account: Account, key: str, path: str, fingerprint: str) -> tuple[bool, IdempotencyKey]:
    """``(True, new row)`` if this request owns the key, else ``(False, the first's row)``."""
    cutoff = db_now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL)
    IdempotencyKey.objects.filter(account=account, key=key, created_at__lt=cutoff).delete()
    try:
        with transaction.atomic():
            row = IdempotencyKey.objects.create(
                account=account, key=key, method="POST", path=path, request_hash=fingerprint
            )
        return True, row
    except IntegrityError:
        return False, IdempotencyKey.objects.get(account=account, key=key)


def _replay(row: IdempotencyKey, path: str, fingerprint: str) -> Response:
    if row.path != path or row.request_hash != fingerprint:
        raise Problem(
            422,
            problem_body(
                422,
                slug="idempotency-key-reused",
                title="Idempotency key reused",
                detail="This Idempotency-Key was already used with a different request body "
                "or endpoint in the last 24 hours.",
            ),
        )
    if row.response_status is None:  # cannot happen: the row commits with its answer
        raise Problem(409, problem_body(409, detail="The first request is still in progress."))
    return Response(
        row.response_body, status=row.response_status, headers={"Idempotent-Replayed": "true"}
    )
