"""Real providers for the chaos scenarios: ``manage.py simulate_providers`` as a process, and
connections pointing at it, so runs go through the real adapters over HTTP.

Every channel is served by simulated providers: Messenger, WhatsApp (then Vonage Messages as
its second connection), Viber, and SMS through Vonage SMS (then Twilio). The traffic gives
each step its own recipient, ``44<group><serial><fate>``: the last digit is the sandbox fate
(design.md), the third the *fault group*; a scenario registers one simulator fault per group
as a prefix (``44<group>*``), so the simulator meets each recipient of that group with it.

The simulator appends every send request it receives to ``SIMULATOR_SEND_LOG`` (a JSON line
with the provider, recipient, ``client_ref`` where the API carries one, the fault met and the
outcome): the checker counts them like the sandbox's call log.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.services import STARTUP_TIMEOUT, Stack, free_port, wait_for

# Receipts of Messenger, WhatsApp and Vonage are signed with these; Viber and Twilio sign with
# the token they were sent. Unique strings, so a leak in a log would be easy to grep for.
SECRETS = {
    "messenger": {
        "page_access_token": "chaos-page-token",
        "app_secret": "chaos-messenger-app-secret",
        "verify_token": "chaos-verify",
    },
    "whatsapp": {
        "access_token": "chaos-wa-token",
        "phone_number_id": "1234",
        "app_secret": "chaos-wa-app-secret",
    },
    "viber": {"auth_token": "chaos-viber-token", "sender_name": "Chaos"},
    "vonage_sms": {
        "api_key": "chaoskey",
        "api_secret": "chaos-api-secret",
        "signature_secret": "chaos-sms-signature-secret-0123456789",
        "signature_method": "sha256",
    },
    "twilio": {"account_sid": "AC0123456789chaos", "auth_token": "chaos-twilio-token"},
    "vonage_messages": {
        "application_id": "chaos-app-0001",
        "signature_secret": "chaos-vm-signature-secret-0123456789abcdef",
    },
}
# (provider, channel, priority): the routes, best first per channel.
CONNECTIONS = (
    ("messenger", "messenger", 10),
    ("whatsapp", "whatsapp", 10),
    ("vonage_messages", "whatsapp", 20),
    ("viber", "viber_service_msg", 10),
    ("vonage_sms", "sms", 10),
    ("twilio", "sms", 20),
)
# Which config key signs each provider's receipts (and which signature method, for Vonage SMS).
SIGNING_KEY = {
    "messenger": "app_secret",
    "whatsapp": "app_secret",
    "viber": "auth_token",
    "vonage_sms": "signature_secret",
    "twilio": "auth_token",
    "vonage_messages": "signature_secret",
}
# What the stack needs to talk to the simulator: short timeouts, so a provider that hangs
# costs a second and a half, and two attempts per connection before the next one.
PROVIDER_SETTINGS = {
    "PROVIDER_CONNECT_TIMEOUT": "1",
    "PROVIDER_READ_TIMEOUT": "1.5",
    "SEND_MAX_ATTEMPTS": "2",
    "POLL_BEFORE_DEADLINE": "0.5",
}


@dataclass
class Simulated:
    """The simulator process and the connections made for it."""

    base_url: str
    send_log: Path
    connections: dict[str, str] = field(default_factory=dict)  # provider -> connection id

    def control(self, path: str, body: dict) -> None:
        response = requests.post(f"{self.base_url}/_simulator/{path}", json=body, timeout=5)
        response.raise_for_status()

    def fault(self, group: str, fault: str, **options) -> None:
        """Every recipient of fault ``group`` meets ``fault`` (``times`` times each; 0 = always)."""
        self.control("faults", {"recipient": f"44{group}*", "fault": fault, **options})

    def secret(self, provider: str) -> str:
        return SECRETS[provider][SIGNING_KEY[provider]]

    def receipt_url(self, stack: Stack, provider: str) -> str:
        return f"{stack.base_url}/webhooks/receipts/{provider}/{self.connections[provider]}"


def start_simulator(stack: Stack, send_log: Path) -> Simulated:
    """Start ``manage.py simulate_providers`` in the stack and connect every channel to it."""
    port = free_port()
    stack.start(
        "simulator",
        "--port",
        str(port),
        "--deliver-after",
        stack.env.get("SANDBOX_DELIVER_AFTER", "0.3"),
        "--read-after",
        stack.env.get("SANDBOX_READ_AFTER", "0.6"),
        "--send-log",
        str(send_log),
    )
    simulated = Simulated(f"http://127.0.0.1:{port}", send_log)
    wait_for(lambda: _answers(simulated.base_url), STARTUP_TIMEOUT, message="the simulator")
    simulated.connections = _connect(simulated.base_url)
    for provider in ("messenger", "whatsapp", "viber", "vonage_sms", "vonage_messages"):
        # Where the provider's dashboard would send receipts (Twilio and Vonage also get a
        # per-message callback from PUBLIC_BASE_URL, which wins).
        simulated.control(
            "webhooks",
            {
                "provider": provider,
                "url": simulated.receipt_url(stack, provider),
                "secret": simulated.secret(provider),
                "signature_method": SECRETS.get(provider, {}).get("signature_method", "md5hash"),
            },
        )
    return simulated


def _connect(base_url: str) -> dict[str, str]:
    from channels_app.models import ProviderConnection
    from tests.channels_app.conftest import rsa_private_pem

    made = {}
    for provider, channel, priority in CONNECTIONS:
        connection = ProviderConnection(
            name=f"chaos {provider}",
            provider=provider,
            channel=channel,
            priority=priority,
            base_url=base_url,
        )
        config = dict(SECRETS[provider])
        if provider == "vonage_messages":
            config["private_key"] = rsa_private_pem()
        connection.config = config
        connection.save()
        made[provider] = str(connection.id)
    return made


def disconnect() -> None:
    """Remove every connection: the next scenario's channels are served by the sandbox again."""
    from channels_app.models import ProviderConnection

    ProviderConnection.objects.all().delete()


def _answers(base_url: str) -> bool:
    try:
        return requests.post(f"{base_url}/_simulator/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def read_sends(path: Path) -> list[dict]:
    """The simulator's send log, in the shape the checker counts (``client_ref``, ``outcome``)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
