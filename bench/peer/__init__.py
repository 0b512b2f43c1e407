"""The peer a user would otherwise build: the same failover as a minimal Django + Celery app,
written the way the Celery documentation suggests (one ``apply_async(countdown=expiry_time)``
per waiting step, receipts updating a row). ``bench/peer_measure.py`` runs it beside ours on
the same machine, the same PostgreSQL, Redis and provider simulator. Not part of the service.
"""
