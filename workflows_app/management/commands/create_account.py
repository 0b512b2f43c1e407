import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from workflows_app.services.accounts import account_create, url_errors


class Command(BaseCommand):
    help = (
        'Create an API account; prints {"api_key", "api_secret", "signature_secret", '
        '"webhook_secret"} (the webhook secret signs Standard Webhooks headers; shown once).'
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--status-url", default="")

    def handle(self, *args, name: str, status_url: str, **options):
        try:
            created = account_create(name=name, status_url=status_url)
        except ValidationError as exc:
            raise CommandError(url_errors(exc)) from exc
        self.stdout.write(
            json.dumps(
                {
                    "api_key": created.account.api_key,
                    "api_secret": created.api_secret,
                    "signature_secret": created.account.signature_secret,
                    "webhook_secret": created.account.webhook_secret,
                }
            )
        )
