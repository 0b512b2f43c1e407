"""The peer a user would otherwise build: the same failover as a minimal Django + Celery app,
written the way the Celery documentation suggests (one ``apply_async(countdown=expiry_time)``
per waiting step, receipts updating a row). ``bench/peer_measure.py`` runs it beside ours on
the same machine, the same PostgreSQL, Redis and provider simulator. Not part of the service.
"""

# As the Celery-with-Django guide does: the app is loaded with Django, so shared tasks bind to it.
from bench.peer.celery import app as celery_app

__all__ = ["celery_app"]
