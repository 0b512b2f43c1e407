"""``manage.py connections list|disable|enable|remove``: provider connections from the command
line (``add_connection`` adds them).

``list`` shows every connection with the names of its config keys, never their values, and
says which enabled ones sends skip (a missing key, unreadable credentials) or whose base URL
does not answer. ``disable`` keeps a connection but stops sending through it (a channel with no
enabled connection goes back to the sandbox); ``enable`` undoes that; ``remove`` deletes it
(receipts for what it sent are refused from then on).
"""

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from channels_app.connection_report import ConnectionSummary, all_connections, base_url_answers
from channels_app.models import ProviderConnection


class Command(BaseCommand):
    help = "List, disable, enable or remove provider connections (add them with add_connection)."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        listing = actions.add_parser("list", help="every connection (credentials never shown)")
        listing.add_argument("--json", action="store_true", dest="as_json")
        listing.add_argument(
            "--no-probe",
            action="store_true",
            help="do not check that each enabled connection's base URL answers",
        )
        for action, what in (
            ("disable", "stop sending through it (kept, with its credentials)"),
            ("enable", "send through it again"),
            ("remove", "delete it and its credentials"),
        ):
            command = actions.add_parser(action, help=what)
            command.add_argument("ids", nargs="+", metavar="ID", help="connection id")

    def handle(self, *args, action, **options):
        if action == "list":
            self.list(options["as_json"], probe=not options["no_probe"])
            return
        rows = [self.connection(value) for value in options["ids"]]
        for row in rows:
            if action == "remove":
                row.delete()
            else:
                row.enabled = action == "enable"
                row.save(update_fields=["enabled", "updated_at"])
            self.stdout.write(f"{action}d {row.provider} on {row.channel} ({row.id})")

    def connection(self, value: str) -> ProviderConnection:
        try:
            return ProviderConnection.objects.get(id=value)
        except (ProviderConnection.DoesNotExist, ValidationError, ValueError):
            raise CommandError(
                f"no connection {value!r} (manage.py connections list shows them)"
            ) from None

    def list(self, as_json: bool, probe: bool) -> None:
        summaries = all_connections()
        if as_json:
            self.stdout.write(json.dumps([summary.as_dict() for summary in summaries], indent=2))
            return
        if not summaries:
            self.stdout.write("No provider connections: every channel is served by the sandbox.")
            return
        for summary in summaries:
            self.stdout.write(describe(summary, probe=probe))


def describe(summary: ConnectionSummary, probe: bool = True) -> str:
    """One connection in a few lines; ``probe`` checks that its base URL answers."""
    state = "enabled" if summary.enabled else "disabled"
    senders = ", ".join(summary.senders) or "every sender"
    lines = [
        f"{summary.id}  {summary.provider} on {summary.channel}  [{state}]"
        + (f"  {summary.name!r}" if summary.name else ""),
        f"    priority {summary.priority}; senders: {senders}",
        f"    base URL: {summary.base_url or '(the provider public API)'}",
        f"    config keys: {', '.join(summary.config_keys) or '(none)'}",
    ]
    if summary.problem:
        lines.append(f"    problem: {summary.problem}")
    if probe and summary.enabled and not base_url_answers(summary.base_url):
        lines.append("    problem: nothing answers at its base URL")
    return "\n".join(lines)
