"""The database cache of embedded mode (orchestrator/cache.py), on whichever database the suite
runs: it keeps what the JWT replay check and the counters rely on from Redis."""

import pytest
from django.core.cache import caches
from django.utils import timezone

from workflows_app.models import CacheEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def database_cache(settings):
    settings.CACHES = {
        **settings.CACHES,
        "database": {
            "BACKEND": "orchestrator.cache.DatabaseCache",
            "LOCATION": "orchestrator_cache",
            "OPTIONS": {"MAX_ENTRIES": 5},
        },
    }
    return caches["database"]


def test_culling_drops_only_expired_entries(database_cache):
    """A forgotten jti is a token that can be replayed: live entries outlast MAX_ENTRIES."""
    for n in range(10):
        assert database_cache.add(f"jti-{n}", 1, timeout=600)
    for n in range(3):
        database_cache.set(f"old-{n}", 1, timeout=600)
    CacheEntry.objects.filter(cache_key__contains="old-").update(
        expires=timezone.now() - timezone.timedelta(seconds=5)
    )
    database_cache.set("one-more", 1, timeout=600)  # over MAX_ENTRIES: culls
    assert not CacheEntry.objects.filter(cache_key__contains="old-").exists()
    assert all(database_cache.get(f"jti-{n}") == 1 for n in range(10))
    assert database_cache.add("jti-3", 1, timeout=600) is False  # still remembered


def test_incr_counts_and_refuses_a_missing_key(database_cache):
    database_cache.add("counter", 0, timeout=60)
    assert [database_cache.incr("counter") for _ in range(3)] == [1, 2, 3]
    with pytest.raises(ValueError):
        database_cache.incr("never-added")
