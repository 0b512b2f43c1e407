"""What an RCS message may carry beyond text and media: Vonage Messages v1's ``card`` and
``carousel`` objects and the ``rcs`` options, in the same field names in both APIs
(``message.content.card`` and ``message.rcs`` in a Workflows item, ``card`` and ``rcs`` in a v1
message). The channel itself is one row of :data:`~workflows_app.api.channels.CHANNELS`.

Limits from the v1 spec's RCS types and the Vonage SDKs (reference/vonage-api.md §3); a
``custom`` message is passed through unchecked, as Vonage does. The adapters
(channels_app/adapters/google_rbm.py, vonage_messages.py) read these fields as stored.
"""

from typing import Annotated, NotRequired

from pydantic import AfterValidator, Strict
from typing_extensions import TypedDict

from workflows_app.api.fields import (
    Choice,
    Integer,
    Invalid,
    Items,
    Text,
    Url,
    at_most,
    is_e164_without_plus,
)

# Top-level `ttl` of a v1 RCS message, seconds (spec v1.20.0: 20..259200, default 259200).
RCS_TTL = (20, 259200)
# The URL or number each kind of suggestion needs besides its text and postback data.
SUGGESTION_NEEDS = {"reply": None, "open_url": "url", "dial": "phone_number"}
PHONE_REASON = "Must be an E.164 number, e.g. +447700900000."


def _phone_number(value: str) -> str:
    # RBM's dialAction takes E.164 with its `+` (the adapter adds it when missing).
    if not is_e164_without_plus(value.removeprefix("+")):
        raise Invalid((), PHONE_REASON)
    return value


def _suggestion_rules(suggestion: dict) -> dict:
    kind = suggestion["type"]
    needs = SUGGESTION_NEEDS[kind]
    if needs and needs not in suggestion:
        raise Invalid((needs,), f"Required when type is {kind}.")
    return suggestion


class RcsSuggestion(TypedDict):
    type: Annotated[str, Choice(*SUGGESTION_NEEDS)]
    text: Annotated[str, Text(25)]
    postback_data: Annotated[str, Text(2048)]
    url: NotRequired[Url]
    phone_number: NotRequired[Annotated[str, Text(16), AfterValidator(_phone_number)]]


class RcsCard(TypedDict):
    title: Annotated[str, Text(200)]
    text: Annotated[str, Text(2000)]
    media_url: Url
    media_height: NotRequired[Annotated[str, Choice("SHORT", "MEDIUM", "TALL")]]
    media_description: NotRequired[Annotated[str, Text(200)]]
    thumbnail_url: NotRequired[Url]
    media_force_refresh: NotRequired[Annotated[bool, Strict()]]
    suggestions: NotRequired[
        Annotated[list[Annotated[RcsSuggestion, AfterValidator(_suggestion_rules)]], at_most(4)]
    ]


class RcsCarousel(TypedDict):
    cards: Annotated[list[RcsCard], Items(limit=lambda: 10, min_length=2)]


class RcsOptions(TypedDict):
    """``message.rcs`` (Workflows) / ``rcs`` (v1): how cards are laid out, and how long RCS
    keeps trying to deliver (a Workflows item has no top-level ``ttl``; in v1 the top-level
    ``ttl`` wins)."""

    card_orientation: NotRequired[Annotated[str, Choice("VERTICAL", "HORIZONTAL")]]
    image_alignment: NotRequired[Annotated[str, Choice("LEFT", "RIGHT")]]
    card_width: NotRequired[Annotated[str, Choice("SMALL", "MEDIUM")]]
    ttl: NotRequired[Annotated[int, Integer(ge=RCS_TTL[0], le=RCS_TTL[1])]]
