"""What each channel accepts, from reference/vonage-api.md §1.2 and §2.2, in one table.

Adding a channel to the API is one row of :data:`CHANNELS`: the Workflows/Dispatch and Messages
v0.1 ``type`` enums, the Messages v1 ``channel`` names and every per-channel rule (addresses,
content types, text length, ``condition_status``) are read from it.
"""

from dataclasses import dataclass

# How an endpoint's field is checked: an E.164 number, a free id, a Viber user id, or (SMS
# senders) an E.164 number or an alphanumeric sender ID.
E164, ID, VIBER_ID, E164_OR_SENDER_ID = "e164", "id", "viber_id", "e164_or_sender_id"


@dataclass(frozen=True)
class ChannelRules:
    # The recipient's fields, each with its check; the first is the one named when none is
    # given, and the one a v1 `to` fills unless it reads as another (see recipient_field).
    to_fields: tuple[tuple[str, str], ...]
    from_field: tuple[str, str]
    content_types: frozenset[str]
    max_text: int
    conditions: frozenset[str]  # allowed condition_status values
    label: str
    v1_name: str  # the Messages v1 `channel`

    def recipient_field(self, to: str) -> str:
        """The endpoint field a v1 ``to`` string fills: a Viber ``to`` of ASCII digits (with or
        without a ``+``, which the E.164 check then refuses) is a phone number, anything else a
        Viber user id."""
        names = [name for name, _ in self.to_fields]
        digits = to.removeprefix("+")
        if "number" in names and (len(names) == 1 or (digits.isascii() and digits.isdigit())):
            return "number"
        return names[0]


MEDIA = frozenset({"image", "audio", "video", "file"})
BOTH = frozenset({"delivered", "read"})
DELIVERED_ONLY = frozenset({"delivered"})
NUMBER = (("number", E164),)

CHANNELS: dict[str, ChannelRules] = {
    "sms": ChannelRules(
        NUMBER,
        ("number", E164_OR_SENDER_ID),
        frozenset({"text"}),
        1000,
        DELIVERED_ONLY,
        "SMS",
        "sms",
    ),
    "mms": ChannelRules(
        NUMBER, ("number", E164), frozenset({"image"}), 0, DELIVERED_ONLY, "MMS", "mms"
    ),
    # The docs state no rule for WhatsApp; Messages reports `read` for it, so both are allowed.
    "whatsapp": ChannelRules(
        NUMBER,
        ("number", E164),
        frozenset({"text", "template", "custom"}) | MEDIA,
        4096,
        BOTH,
        "WhatsApp",
        "whatsapp",
    ),
    "messenger": ChannelRules(
        (("id", ID),),
        ("id", ID),
        frozenset({"text", "custom"}) | MEDIA,
        640,
        BOTH,
        "Messenger",
        "messenger",
    ),
    # Viber's Bot API addresses a Viber user id (to.id); Vonage's API took a phone number.
    "viber_service_msg": ChannelRules(
        (("id", VIBER_ID), ("number", E164)),
        ("id", ID),
        frozenset({"text", "image", "template", "custom"}),
        1000,
        BOTH,
        "Viber",
        "viber_service",
    ),
    # RCS reports delivered and read (Vonage v1, Google RBM user events); `from` is the agent.
    "rcs": ChannelRules(
        NUMBER,
        ("id", ID),
        frozenset({"text", "image", "video", "file", "card", "carousel", "custom"}),
        3072,
        BOTH,
        "RCS",
        "rcs",
    ),
}
CONTENT_TYPES = (
    "text",
    "image",
    "audio",
    "video",
    "file",
    "template",
    "custom",
    "card",
    "carousel",
)
# Messages v1 `channel` → our channel.
V1_CHANNELS = {rules.v1_name: channel for channel, rules in CHANNELS.items()}
