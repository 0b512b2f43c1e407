"""What an RCS message may carry beyond text and media: Vonage Messages v1's ``card`` and
``carousel`` objects and the ``rcs`` options, in the same field names in both APIs
(``message.content.card`` in a Workflows item, ``card`` in a v1 message).

Limits from the v1 spec's RCS types and the Vonage SDKs (reference/vonage-api.md §3); a
``custom`` message is passed through unchecked, as Vonage does.
"""

from rest_framework import serializers

from workflows_app.api.fields import StrictCharField, StrictIntegerField

# Top-level `ttl` of a v1 RCS message, seconds (spec v1.20.0: 20..259200, default 259200).
RCS_TTL = (20, 259200)
SUGGESTION_TYPES = ["reply", "open_url", "dial"]


class RcsSuggestionSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=SUGGESTION_TYPES)
    text = StrictCharField(min_length=1, max_length=25)
    postback_data = StrictCharField(min_length=1, max_length=2048)
    url = serializers.URLField(max_length=2000, required=False)
    phone_number = StrictCharField(min_length=7, max_length=16, required=False)

    def validate(self, attrs):
        needs = {"open_url": "url", "dial": "phone_number"}.get(attrs["type"])
        if needs and needs not in attrs:
            raise serializers.ValidationError(
                {needs: f"Required for a {attrs['type']} suggestion."}
            )
        return attrs


class RcsCardSerializer(serializers.Serializer):
    title = StrictCharField(min_length=1, max_length=200)
    text = StrictCharField(min_length=1, max_length=2000)
    media_url = serializers.URLField(max_length=2000)
    media_height = serializers.ChoiceField(choices=["SHORT", "MEDIUM", "TALL"], required=False)
    media_description = StrictCharField(min_length=1, max_length=200, required=False)
    thumbnail_url = serializers.URLField(max_length=2000, required=False)
    media_force_refresh = serializers.BooleanField(required=False)
    suggestions = serializers.ListField(
        child=RcsSuggestionSerializer(), required=False, max_length=4
    )


class RcsCarouselSerializer(serializers.Serializer):
    cards = serializers.ListField(child=RcsCardSerializer(), min_length=2, max_length=10)


class RcsOptionsSerializer(serializers.Serializer):
    """``message.rcs`` (Workflows) / ``rcs`` (v1): how cards are laid out, and (Workflows
    only, where the item has no top-level ``ttl``) how long RCS keeps trying to deliver."""

    card_orientation = serializers.ChoiceField(choices=["VERTICAL", "HORIZONTAL"], required=False)
    image_alignment = serializers.ChoiceField(choices=["LEFT", "RIGHT"], required=False)
    card_width = serializers.ChoiceField(choices=["SMALL", "MEDIUM"], required=False)
    ttl = StrictIntegerField(min_value=RCS_TTL[0], max_value=RCS_TTL[1], required=False)
