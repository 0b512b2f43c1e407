"""Fixtures for the provider edge: the simulator on loopback, and a connection per provider."""

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channels_app.models import ProviderConnection
from channels_app.simulator.server import start_in_thread
from channels_app.simulator.state import Simulator


@cache
def rsa_private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def service_account_key(email: str = "rbm-agent@acme.iam.gserviceaccount.com") -> dict[str, str]:
    """A service-account key file's fields (the token URL is the simulator's, see connect)."""
    return {
        "type": "service_account",
        "project_id": "acme",
        "private_key_id": "key-1",
        "private_key": rsa_private_pem(),
        "client_email": email,
        "token_uri": "https://oauth2.googleapis.com/token",
    }


@dataclass(frozen=True)
class ProviderSpec:
    provider: str
    channel: str
    sender: dict[str, Any]
    to_field: str
    config: dict[str, Any] = field(default_factory=dict)
    secret_key: str = ""  # which config key signs its receipts

    def step(self, recipient: str, *, content: dict | None = None, **options: Any) -> dict:
        message: dict[str, Any] = {"content": content or {"type": "text", "text": "hi there"}}
        if options:
            message[self.channel] = options
        return {
            "channel": self.channel,
            "sender": self.sender,
            "recipient": {"type": self.channel, self.to_field: recipient},
            "message": message,
        }


def specs() -> dict[str, ProviderSpec]:
    return {
        s.provider: s
        for s in (
            ProviderSpec(
                "messenger",
                "messenger",
                {"type": "messenger", "id": "page-1"},
                "id",
                {
                    "page_access_token": "page-token",
                    "app_secret": "app-secret",
                    "verify_token": "vt",
                },
                "app_secret",
            ),
            ProviderSpec(
                "whatsapp",
                "whatsapp",
                {"type": "whatsapp", "number": "447700900100"},
                "number",
                {"access_token": "wa-token", "phone_number_id": "1234", "app_secret": "wa-secret"},
                "app_secret",
            ),
            ProviderSpec(
                "viber",
                "viber_service_msg",
                {"type": "viber_service_msg", "id": "shop"},
                "number",
                {"auth_token": "viber-token", "sender_name": "Shop"},
                "auth_token",
            ),
            ProviderSpec(
                "vonage_sms",
                "sms",
                {"type": "sms", "number": "447700900001"},
                "number",
                {
                    "api_key": "key1",
                    "api_secret": "api-secret",
                    "signature_secret": "sms-signature-secret-0123456789abc",
                    "signature_method": "sha256",
                },
                "signature_secret",
            ),
            ProviderSpec(
                "twilio",
                "sms",
                {"type": "sms", "number": "447700900002"},
                "number",
                {"account_sid": "AC0123456789", "auth_token": "twilio-token"},
                "auth_token",
            ),
            ProviderSpec(
                "google_rbm",
                "rcs",
                {"type": "rcs", "id": "acme-agent"},
                "number",
                {
                    "service_account": service_account_key(),
                    "agent_id": "acme-agent",
                    "client_token": "rbm-client-token-0123456789",
                },
                "client_token",
            ),
            ProviderSpec(
                "vonage_messages",
                "sms",
                {"type": "sms", "number": "447700900003"},
                "number",
                {
                    "application_id": "app-0001",
                    "private_key": rsa_private_pem(),
                    "signature_secret": "vm-signature-secret-0123456789abcdef",
                },
                "signature_secret",
            ),
        )
    }


SPECS = specs()
PROVIDERS = list(SPECS)


@pytest.fixture(scope="session")
def simulator_server():
    simulator = Simulator(deliver_after=0.2, read_after=0.4)
    server = start_in_thread(simulator)
    yield server
    server.shutdown()
    server.server_close()


class SimulatorControl:
    def __init__(self, server) -> None:
        self.server = server
        self.base_url = server.base_url

    def post(self, path: str, body: dict) -> None:
        response = requests.post(f"{self.base_url}/_simulator/{path}", json=body, timeout=5)
        assert response.status_code == 200, response.text

    def fault(self, recipient: str, fault: str, **options: Any) -> None:
        self.post("faults", {"recipient": recipient, "fault": fault, **options})

    def webhook(self, provider: str, url: str, secret: str, method: str = "md5hash") -> None:
        self.post(
            "webhooks",
            {"provider": provider, "url": url, "secret": secret, "signature_method": method},
        )

    def messages(self) -> dict:
        return requests.get(f"{self.base_url}/_simulator/messages", timeout=5).json()["messages"]


@pytest.fixture
def simulator(simulator_server):
    simulator_server.simulator.reset()
    return SimulatorControl(simulator_server)


def connect(spec: ProviderSpec, base_url: str = "", **overrides: Any) -> ProviderConnection:
    connection = ProviderConnection(
        provider=spec.provider,
        channel=overrides.pop("channel", spec.channel),
        base_url=base_url,
        priority=overrides.pop("priority", 100),
        senders=overrides.pop("senders", []),
    )
    config = {**spec.config, **overrides}
    if spec.provider == "google_rbm" and base_url and "token_url" not in config:
        config["token_url"] = f"{base_url}/token"  # the simulator serves Google's token endpoint
    connection.config = config
    connection.save()
    return connection
