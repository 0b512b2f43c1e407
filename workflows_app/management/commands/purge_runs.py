"""``manage.py purge_runs --older-than DAYS``: delete finished runs and everything they own, and
idempotency keys older than ``IDEMPOTENCY_KEY_TTL``."""

from django.core.management.base import BaseCommand, CommandError

from workflows_app.services.retention import idempotency_keys_purge, runs_purge


class Command(BaseCommand):
    help = (
        "Delete runs that finished more than DAYS ago, with their events and webhooks, and "
        "idempotency keys older than IDEMPOTENCY_KEY_TTL."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=float, required=True, metavar="DAYS")
        parser.add_argument("--batch", type=int, default=500)

    def handle(self, *args, older_than: float, batch: int, **options):
        if older_than < 0:
            raise CommandError("--older-than must be 0 or more days")
        if batch < 1:
            raise CommandError("--batch must be 1 or more")
        deleted = runs_purge(older_than, batch=batch)
        keys = idempotency_keys_purge(batch=batch)
        self.stdout.write(f"purged {deleted} run(s) and {keys} expired idempotency key(s)")
