"""The receipt backstop: ask the provider for the status of a waiting step's message before
its deadline decides, in case the receipt was lost (Twilio retries callbacks once at most).

Runs outside any transaction (it is a network call); what it learns is applied as an ordinary
receipt, so a poll that races a real receipt is just a duplicate.
"""

import logging

from channels_app.errors import ProviderError
from channels_app.registry import poll, polling_providers
from workflows_app.models import Attempt, Step
from workflows_app.services.receipts import receipts_apply
from workflows_app.states import AttemptOutcome, StepState

logger = logging.getLogger(__name__)


def step_provider_poll(step_id: int) -> int:
    """Poll the provider for a waiting step's message; returns how many receipts it applied."""
    step = Step.objects.filter(id=step_id, state=StepState.WAITING).first()
    if step is None:
        return 0
    attempt = (
        Attempt.objects.filter(
            step=step, outcome=AttemptOutcome.ACCEPTED, provider__in=polling_providers()
        )
        .order_by("-number")
        .first()
    )
    if attempt is None:
        return 0
    events = []
    for provider_message_id in attempt.provider_message_ids:
        try:
            events += poll(attempt.provider, attempt.connection_id, provider_message_id)
        except ProviderError as error:
            logger.warning("poll of %s failed: %s", provider_message_id, error.reason)
        except Exception:
            logger.exception("poll of %s failed", provider_message_id)
    receipts_apply(events)
    return len(events)
