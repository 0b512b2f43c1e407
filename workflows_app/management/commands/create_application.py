import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from workflows_app.models import Account
from workflows_app.services.accounts import url_errors
from workflows_app.services.applications import application_create


class Command(BaseCommand):
    help = (
        "Create an application (JWT signing key pair) for an account; prints "
        '{"application_id", "private_key"}. Only the public key is stored.'
    )

    def add_arguments(self, parser):
        parser.add_argument("--api-key", required=True, help="the owning account's API key")
        parser.add_argument("--name", required=True)
        parser.add_argument("--status-url", default="", help="where status webhooks go")
        parser.add_argument("--inbound-url", default="", help="where inbound messages go")

    def handle(self, *args, api_key: str, name: str, status_url: str, inbound_url: str, **opts):
        account = Account.objects.filter(api_key=api_key).first()
        if account is None:
            raise CommandError(f"No account has the API key {api_key!r}.")
        try:
            created = application_create(
                account=account, name=name, status_url=status_url, inbound_url=inbound_url
            )
        except ValidationError as exc:
            raise CommandError(url_errors(exc)) from exc
        self.stdout.write(
            json.dumps(
                {
                    "application_id": str(created.application.id),
                    "private_key": created.private_key,
                    # Signs the Standard Webhooks headers of this application's status
                    # webhooks (docs/webhooks.md); shown here once.
                    "webhook_secret": created.application.webhook_secret,
                }
            )
        )
