"""Which claimed-for-sending steps may go now under their connections' rate limits.

A connection's ``max_per_second`` (:mod:`channels_app.ratelimit`) is shared by every worker
process. The claim asks it before it moves any step to ``sending``, so a step above the rate
never holds a claim (nor its ``SENDING_LEASE``) while it waits: it stays ``pending`` with a
later ``ready_at``, spread one emission interval apart so that the steps held back come due
one by one instead of all at once, and a ``send_due`` task is queued for when the first is
due. Its deadline is unaffected: a deadline runs from the attempt that gets sent.
"""

from collections import defaultdict
from datetime import datetime, timedelta

from channels_app.ratelimit import rate_admit, rate_limit_of
from channels_app.registry import Route
from workflows_app.models import Step
from workflows_app.services.dispatch import SEND_DUE, enqueue_on_commit
from workflows_app.services.sql import rows_update

# Connections that are not a provider's: no quota to keep.
UNLIMITED = {"", "sandbox"}


def steps_admit(
    steps: list[tuple[Step, Route]], now: datetime
) -> tuple[list[tuple[Step, Route]], list[Step]]:
    """Split ``(step, route)`` pairs into those that may be sent now and those held back
    (their ``ready_at`` moved on, in this transaction). Call inside the claiming transaction,
    with ``now`` its database clock."""
    by_connection: dict[str, list[tuple[Step, Route]]] = defaultdict(list)
    admitted: list[tuple[Step, Route]] = []
    for pair in steps:
        if pair[1].connection_id in UNLIMITED:
            admitted.append(pair)
        else:
            by_connection[pair[1].connection_id].append(pair)
    held: list[Step] = []
    first_due: float | None = None
    for connection_id, group in by_connection.items():
        limit = rate_limit_of(group[0][1].config)
        count, wait = rate_admit(connection_id, limit, len(group))
        admitted += group[:count]
        spacing = 1 / limit.per_second if limit else 0.0
        for position, (step, _) in enumerate(group[count:]):
            step.ready_at = now + timedelta(seconds=wait + position * spacing)
            held.append(step)
        if count < len(group):
            first_due = wait if first_due is None else min(first_due, wait)
    rows_update(held, ["ready_at"])
    if first_due is not None:
        enqueue_on_commit(SEND_DUE, countdown=first_due)
    return admitted, held
