import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
django_application = get_wsgi_application()

from orchestrator.bodies import BodyFraming  # noqa: E402 - needs the settings configured

# Chunked bodies read, unread bodies close the connection (orchestrator/bodies.py).
application = BodyFraming(django_application)
