"""``manage.py rotate_webhook_secret (--api-key KEY | --application-id ID) [--overlap-hours H]``.

Prints ``{"webhook_secret": "whsec_…", "previous_valid_until": "…"}``. Until then, webhooks carry
a signature made with the old secret beside the new one.
"""

import json

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.management.base import BaseCommand, CommandError

from workflows_app.models import Account, Application
from workflows_app.services.operators import operator_log
from workflows_app.webhooks.signing import webhook_secret_rotate


class Command(BaseCommand):
    help = "Rotate the Standard Webhooks secret of an account or an application."

    def add_arguments(self, parser):
        owner = parser.add_mutually_exclusive_group(required=True)
        owner.add_argument("--api-key")
        owner.add_argument("--application-id")
        parser.add_argument("--overlap-hours", type=float, default=None)

    def handle(self, *args, api_key, application_id, overlap_hours, **options):
        model, key = (
            (Account, {"api_key": api_key}) if api_key else (Application, {"id": application_id})
        )
        try:
            owner = model.objects.get(**key)
        except (ObjectDoesNotExist, ValidationError) as error:
            raise CommandError(f"no such {model.__name__.lower()}: {error}") from error
        secret = webhook_secret_rotate(owner, overlap_hours)
        operator_log(
            "rotate_webhook_secret",
            "manage.py",
            f"rotated the webhook secret of {model.__name__} {owner.pk}",
            owner=f"{model.__name__}:{owner.pk}",
        )
        until = owner.webhook_secret_previous_until
        self.stdout.write(
            json.dumps(
                {"webhook_secret": secret, "previous_valid_until": until and until.isoformat()}
            )
        )
