"""``/webhooks/receipts/<provider>`` and ``/webhooks/receipts/<provider>/<connection id>``, one
pair per provider of :data:`channels_app.registry.PROVIDERS` that has a receipt parser.

Register the second form on the provider's side: it names the connection whose secret
verifies the receipt. The first tries every connection of that provider.
"""

from django.urls import path

from channels_app.receipts.base import ReceiptWebhookView
from channels_app.registry import RECEIPT_PARSERS

urlpatterns = []
for _name, _parser in RECEIPT_PARSERS.items():
    _view = ReceiptWebhookView.as_view(parser=_parser)
    urlpatterns += [
        path(f"{_name}", _view, name=f"receipts-{_name}"),
        path(f"{_name}/<uuid:connection_id>", _view, name=f"receipts-{_name}-connection"),
    ]
