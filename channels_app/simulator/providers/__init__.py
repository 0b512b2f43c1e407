"""What each simulated provider says: its send answers, its errors, and its signed receipts.

Each module knows one provider's wire format (reference/providers.md, vonage-api.md) and
nothing about the server around it. Signatures are computed here independently of the
receipt parsers, from the providers' documented algorithms.
"""

from channels_app.simulator.providers.base import (
    Answer,
    Request,
    Sent,
    SimProvider,
    Webhook,
    now_ms,
)
from channels_app.simulator.providers.google_rbm import GoogleRbm
from channels_app.simulator.providers.meta import Messenger, WhatsApp, hub_signature
from channels_app.simulator.providers.twilio import TWILIO_STATUS, Twilio, twilio_signature
from channels_app.simulator.providers.viber import Viber
from channels_app.simulator.providers.vonage import VonageMessages, VonageSms, vonage_sms_sig

PROVIDERS: list[SimProvider] = [
    WhatsApp(),
    Messenger(),
    Viber(),
    VonageSms(),
    Twilio(),
    VonageMessages(),
    GoogleRbm(),
]

__all__ = [
    "PROVIDERS",
    "TWILIO_STATUS",
    "Answer",
    "GoogleRbm",
    "Messenger",
    "Request",
    "Sent",
    "SimProvider",
    "Twilio",
    "Viber",
    "VonageMessages",
    "VonageSms",
    "Webhook",
    "WhatsApp",
    "hub_signature",
    "now_ms",
    "twilio_signature",
    "vonage_sms_sig",
]
