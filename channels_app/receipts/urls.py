"""``/webhooks/receipts/<provider>`` and ``/webhooks/receipts/<provider>/<connection id>``.

Register the second form on the provider's side: it names the connection whose secret
verifies the receipt. The first tries every connection of that provider.
"""

from django.urls import path

from channels_app.receipts.base import ReceiptParser, ReceiptWebhookView
from channels_app.receipts.google_rbm import GoogleRbmReceiptParser
from channels_app.receipts.messenger import MessengerReceiptParser
from channels_app.receipts.twilio import TwilioReceiptParser
from channels_app.receipts.viber import ViberReceiptParser
from channels_app.receipts.vonage_messages import VonageMessagesReceiptParser
from channels_app.receipts.vonage_sms import VonageSmsReceiptParser
from channels_app.receipts.whatsapp import WhatsAppReceiptParser

PARSERS: dict[str, ReceiptParser] = {
    parser.provider: parser
    for parser in (
        MessengerReceiptParser(),
        ViberReceiptParser(),
        VonageSmsReceiptParser(),
        TwilioReceiptParser(),
        WhatsAppReceiptParser(),
        VonageMessagesReceiptParser(),
        GoogleRbmReceiptParser(),
    )
}

urlpatterns = []
for _name, _parser in PARSERS.items():
    _view = ReceiptWebhookView.as_view(parser=_parser)
    urlpatterns += [
        path(f"{_name}", _view, name=f"receipts-{_name}"),
        path(f"{_name}/<uuid:connection_id>", _view, name=f"receipts-{_name}-connection"),
    ]
