"""``manage.py demo_setup``: what ``make run`` does before it starts the processes.

1. creates ``VAR_DIR`` (and the broker folder when Celery uses the embedded filesystem transport);
2. applies migrations and collects the admin's static files (``--skip-migrate`` and
   ``--skip-collectstatic`` turn those off);
3. makes sure a demo account exists. Its key and secret are kept in ``VAR_DIR/demo-account.json``
   so every run prints the same credentials; if the database lost the account (a new database,
   another ``DATABASE_URL``), it is created again with the same key and secret;
4. prints the URL, the credentials, a ready-to-paste curl of the canonical request (600 s
   expiry) and of the same request with the shortest expiry (15 s: a failover to watch), how
   to follow a run, and the enabled provider connections (warning about any whose base URL does
   not answer: a simulator connection left in ``var/`` takes its channel off the sandbox).
"""

import json
import os
import secrets
import shlex
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from channels_app.connection_report import all_connections, base_url_answers
from workflows_app.models import Account, hash_secret
from workflows_app.services.accounts import account_create

DEMO_ACCOUNT_NAME = "demo"
CREDENTIALS_FILE = "demo-account.json"

# Sandbox recipients (README.md, "Sandbox recipients"): the last digit decides the fate.
MESSENGER_SENDER = "100200300"
MESSENGER_RECIPIENT = "1000000004"  # 4: delivered, never read -> fails over when expiry passes
SMS_FROM = "447700900001"
SMS_TO = "447700900000"  # 0: delivered after about 1 s


def canonical_request(expiry_time: int = 600) -> dict:
    """The request the Workflows API documentation opened with, with sandbox recipients."""
    return {
        "template": "failover",
        "workflow": [
            {
                "from": {"type": "messenger", "id": MESSENGER_SENDER},
                "to": {"type": "messenger", "id": MESSENGER_RECIPIENT},
                "message": {
                    "content": {"type": "text", "text": "Your order has shipped (Messenger)"}
                },
                "failover": {"expiry_time": expiry_time, "condition_status": "read"},
            },
            {
                "from": {"type": "sms", "number": SMS_FROM},
                "to": {"type": "sms", "number": SMS_TO},
                "message": {"content": {"type": "text", "text": "Your order has shipped (SMS)"}},
            },
        ],
    }


def _request_body_text(expiry_time: int = 600) -> str:
    """The body laid out as in README.md: one line per from/to/message/failover."""
    workflow = canonical_request(expiry_time)["workflow"]
    lines = []
    for number, step in enumerate(workflow):
        keys = [key for key in ("from", "to", "message", "failover") if key in step]
        parts = []
        for key in keys:
            label = f'"{key}":'
            if key == "to":  # lined up under "from", as in README.md
                label = label.ljust(len('"from":'))
            parts.append(f"{label} {json.dumps(step[key])}")
        closer = "}" + ("," if number < len(workflow) - 1 else "")
        lines.append("    {" + ",\n     ".join(parts) + closer)
    return '{\n  "template": "failover",\n  "workflow": [\n' + "\n".join(lines) + "\n  ]}"


def base_url(host: str, port: int | str) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host
    return f"http://{shown}:{port}"


def _user(api_key: str, api_secret: str) -> str:
    """``-u``'s argument, single-quoted as in README.md (shlex-quoted if it holds a quote)."""
    user = f"{api_key}:{api_secret}"
    return shlex.quote(user) if "'" in user else f"'{user}'"


def curl_create(url: str, api_key: str, api_secret: str, expiry_time: int = 600) -> str:
    return (
        f"curl -X POST {url}/beta/workflows -u {_user(api_key, api_secret)} \\\n"
        "  -H 'Content-Type: application/json' -H 'Accept: application/json' -d '"
        + _request_body_text(expiry_time)
        + "'"
    )


def curl_get(url: str, api_key: str, api_secret: str) -> str:
    return f"curl -u {_user(api_key, api_secret)} {url}/beta/workflows/<workflow_uuid>"


class Command(BaseCommand):
    help = (
        "Prepare the embedded service (var/ folders, migrations, static files), make sure a "
        "demo account exists, and print its credentials with a ready curl."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--skip-migrate", action="store_true")
        parser.add_argument("--skip-collectstatic", action="store_true")
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="print only the credentials, as JSON",
        )
        parser.add_argument(
            "--simulator",
            default="",
            metavar="URL",
            help="the provider simulator's URL when this run starts it (not probed)",
        )

    def handle(
        self,
        *args,
        host: str,
        port: str,
        skip_migrate: bool,
        skip_collectstatic: bool,
        as_json: bool,
        simulator: str,
        **options,
    ):
        var_dir = Path(settings.VAR_DIR)
        var_dir.mkdir(parents=True, exist_ok=True)
        if settings.EMBEDDED_BROKER:
            Path(settings.BROKER_DIR).mkdir(parents=True, exist_ok=True)
        quiet = {"verbosity": 0, "interactive": False}
        if not skip_migrate:
            call_command("migrate", **quiet)
        if not skip_collectstatic:
            call_command("collectstatic", **quiet)

        credentials = ensure_demo_account(var_dir / CREDENTIALS_FILE)
        if as_json:
            self.stdout.write(json.dumps(credentials))
            return
        self.stdout.write(
            banner(
                base_url(host, port),
                credentials["api_key"],
                credentials["api_secret"],
                connections_text(simulator),
            )
        )


def ensure_demo_account(path: Path) -> dict:
    """The demo account's credentials, the same on every run (see the module docstring)."""
    saved = _read_credentials(path)
    with transaction.atomic():
        if saved:
            account = Account.objects.filter(api_key=saved["api_key"]).first()
            if account is None:
                account = account_create(
                    name=DEMO_ACCOUNT_NAME,
                    api_key=saved["api_key"],
                    api_secret=saved["api_secret"],
                ).account
            elif not account.check_secret(saved["api_secret"]):
                # The file is what the operator was shown last time: make the database agree.
                Account.objects.filter(id=account.id).update(
                    api_secret_hash=hash_secret(saved["api_secret"])
                )
            api_key, api_secret = saved["api_key"], saved["api_secret"]
        else:
            api_key, api_secret = f"demo{secrets.token_hex(4)}", secrets.token_urlsafe(16)
            account = account_create(
                name=DEMO_ACCOUNT_NAME, api_key=api_key, api_secret=api_secret
            ).account
    credentials = {
        "api_key": api_key,
        "api_secret": api_secret,
        "signature_secret": account.signature_secret,
    }
    if credentials != saved:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(credentials, indent=2) + "\n")
        tmp.chmod(0o600)
        tmp.replace(path)
    return credentials


def _read_credentials(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(key), str) and data.get(key) for key in ("api_key", "api_secret")
    ):
        return None
    return data


def banner(url: str, api_key: str, api_secret: str, connections: str = "") -> str:
    """What ``make run`` prints before it starts the processes; ``connections`` is
    :func:`connections_text`'s report (empty: not shown)."""
    rule = "-" * 78
    quick = quick_expiry_time()
    return "\n".join(
        [
            rule,
            f"Failover orchestrator: {url}  (admin: {url}/admin/)",
            "",
            f"Demo account   API key: {api_key}   API secret: {api_secret}",
            "",
            "1. The canonical workflow: Messenger first, waiting up to 600 s for `read`, then SMS:",
            "",
            curl_create(url, api_key, api_secret),
            "",
            f"   Expect 202 and a workflow_uuid. {MESSENGER_RECIPIENT} ends in 4: delivered "
            "after about 1 s, never",
            "   read, so the run fails over when expiry_time (600 s, ten minutes) passes and "
            "sends the SMS,",
            "   delivered about 1 s later: the run is completed.",
            "",
            f"2. The same with a {quick} s expiry, to watch a failover now:",
            "",
            curl_create(url, api_key, api_secret, expiry_time=quick),
            "",
            "   Expect: step 1 `waiting` with status `delivered` after about 1 s; at "
            f"{quick} s it becomes",
            "   `failed_over` (failover_reason `expired`), step 2 is sent, and about 1 s later "
            "the run is",
            "   `completed`.",
            "",
            "Other recipients: ending in 1: rejected at once, immediate failover. Ending in 0: "
            "read in",
            "about 2 s, completed on Messenger. README.md lists every digit.",
            "",
            "Follow a run (use the workflow_uuid the POST returned; repeat to see it move):",
            "",
            curl_get(url, api_key, api_secret),
            "",
            f"or its timeline in the admin, {url}/admin/ (make a login with",
            "`.venv/bin/python manage.py createsuperuser`).",
            *([""] + connections.splitlines() if connections else []),
            rule,
        ]
    )


def quick_expiry_time() -> int:
    """The shortest expiry the API accepts, 15 s unless configured otherwise."""
    return max(15, int(settings.WORKFLOWS_MIN_EXPIRY_TIME))


def connections_text(simulator_url: str = "") -> str:
    """The enabled provider connections, for the banner: each takes its channel off the
    sandbox, so a forgotten one (a simulator connection left in ``var/``) must be visible.
    Warns about each whose base URL does not answer, except the simulator this run starts
    (``simulator_url``). Never shows a credential."""
    enabled = all_connections(enabled_only=True)
    if not enabled:
        return "Provider connections: none, the sandbox serves every channel."
    manage = ".venv/bin/python manage.py connections"
    lines = ["Provider connections (their channels are sent through them, not the sandbox):"]
    for summary in enabled:
        where = summary.base_url or "the provider's public API"
        lines.append(f"  {summary.provider} on {summary.channel} via {where}  ({summary.id})")
        if summary.problem:
            lines.append(f"    WARNING: sends skip it: {summary.problem}")
        if simulator_url and summary.base_url.rstrip("/") == simulator_url.rstrip("/"):
            continue  # the simulator starts with this run, after the banner
        if not base_url_answers(summary.base_url):
            lines.append(
                f"    WARNING: nothing answers at {summary.base_url}: every send through it "
                "fails over."
            )
            lines.append(f"    Disable it: {manage} disable {summary.id}")
            lines.append("    (or, if it is the simulator, start it: SIMULATOR=1 make run)")
    lines.append(f"Manage them: {manage} list | disable ID | enable ID | remove ID")
    return "\n".join(lines)
