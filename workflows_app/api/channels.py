"""What each channel accepts, from reference/vonage-api.md §1.2 and §2.2, in one table."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelRules:
    to_field: str  # "id" or "number"
    from_field: str
    content_types: frozenset[str]
    max_text: int
    conditions: frozenset[str]  # allowed condition_status values
    label: str


MEDIA = frozenset({"image", "audio", "video", "file"})
BOTH = frozenset({"delivered", "read"})
DELIVERED_ONLY = frozenset({"delivered"})

CHANNELS: dict[str, ChannelRules] = {
    "sms": ChannelRules("number", "number", frozenset({"text"}), 1000, DELIVERED_ONLY, "SMS"),
    "mms": ChannelRules("number", "number", frozenset({"image"}), 0, DELIVERED_ONLY, "MMS"),
    "messenger": ChannelRules(
        "id", "id", frozenset({"text", "custom"}) | MEDIA, 640, BOTH, "Messenger"
    ),
    "viber_service_msg": ChannelRules(
        "number", "id", frozenset({"text", "image", "template", "custom"}), 1000, BOTH, "Viber"
    ),
    # The docs state no rule for WhatsApp; Messages reports `read` for it, so both are allowed.
    "whatsapp": ChannelRules(
        "number",
        "number",
        frozenset({"text", "template", "custom"}) | MEDIA,
        4096,
        BOTH,
        "WhatsApp",
    ),
    # RCS reports delivered and read (Vonage v1, Google RBM user events); `from` is the agent.
    "rcs": ChannelRules(
        "number",
        "id",
        frozenset({"text", "image", "video", "file", "card", "carousel", "custom"}),
        3072,
        BOTH,
        "RCS",
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
