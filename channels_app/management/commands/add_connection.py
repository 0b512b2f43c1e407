"""``manage.py add_connection``: store a provider connection; prints its id."""

import json

from django.core.management.base import BaseCommand, CommandError

from channels_app.models import ProviderConnection
from channels_app.registry import ADAPTERS


class Command(BaseCommand):
    help = "Add a provider connection (credentials are stored encrypted). Prints its id."

    def add_arguments(self, parser):
        parser.add_argument(
            "--provider", required=True, choices=sorted(set(ADAPTERS) - {"unrouted"})
        )
        parser.add_argument("--channel", required=True)
        parser.add_argument("--senders", default="", help="comma-separated; empty = all senders")
        parser.add_argument("--config", default="{}", help="credentials and options, as JSON")
        parser.add_argument("--priority", type=int, default=100, help="lower is tried first")
        parser.add_argument("--base-url", default="")
        parser.add_argument("--name", default="")

    def handle(
        self, *args, provider, channel, senders, config, priority, base_url, name, **options
    ):
        adapter = ADAPTERS[provider]
        served = ", ".join(sorted(adapter.channels))
        if channel not in adapter.channels:
            raise CommandError(f"{provider} does not serve {channel}; it serves {served}")
        try:
            credentials = json.loads(config)
        except ValueError as error:
            raise CommandError(f"--config is not valid JSON: {error}") from None
        if not isinstance(credentials, dict):
            raise CommandError("--config must be a JSON object")
        connection = ProviderConnection(
            name=name,
            provider=provider,
            channel=channel,
            senders=[s.strip() for s in senders.split(",") if s.strip()],
            priority=priority,
            base_url=base_url,
        )
        connection.config = credentials
        connection.full_clean(exclude=["config_encrypted", "senders"])
        connection.save()
        missing = adapter.missing_config(credentials)
        if missing:  # stored as asked, but sends skip it until the keys are added
            self.stderr.write(
                f"warning: {provider} requires {', '.join(adapter.required_config)}; without "
                f"{', '.join(missing)} this connection is disabled (manage.py check --database "
                "default lists such connections)"
            )
        self.stdout.write(str(connection.id))
