"""The shared cache's backends: Redis when ``REDIS_URL`` is set, else the database.

Every process (web workers, Celery workers, the scheduler) must see one cache: the JWT replay
check, the failed-login brake and the request budgets count across all of them.

:class:`RedisCache` is Django's Redis cache with one client per connection pool. Django's
``RedisCacheClient.get_client`` builds a new ``redis.Redis`` for every cache call, and redis-py
fills some 170 response callbacks into each: ~60 µs per call, and an API request makes about
five (throttles, the login brake, the send request). A ``redis.Redis`` is thread-safe (it takes
a connection from its pool per command), so one per pool serves every call.

:class:`DatabaseCache` is Django's database cache, for embedded mode (no Redis): the table is
``workflows_app.CacheEntry``, created by a migration.
"""

from typing import Any

from django.core.cache.backends import db as django_db
from django.core.cache.backends import redis as django_redis
from django.db import connections, router, transaction


class PooledClientRedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        # Both are Django's own (django/core/cache/backends/redis.py), not in its type stubs.
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        client = self._clients.get(id(pool))
        if client is None:
            client = self._client(connection_pool=pool)  # type: ignore[attr-defined]
            self._clients[id(pool)] = client
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = PooledClientRedisCacheClient


class DatabaseCache(django_db.DatabaseCache):
    """Django's database cache, with the two guarantees the callers rely on from Redis.

    - ``add`` is already atomic: it INSERTs under the table's primary key, and the loser of a
      race gets False (Django's own code).
    - ``incr`` is made atomic: Django's is a read then a write, so two processes counting at
      once would lose one. Here both run in one transaction that first locks the row (an
      UPDATE: a row lock on PostgreSQL; on SQLite, whose transactions here begin IMMEDIATE,
      the database's write lock).
    - Culling never drops a live entry: Django's, once the table passes ``MAX_ENTRIES``, would
      delete live ones too, and a forgotten ``jti`` is a token that can be replayed. Here it
      deletes only what has expired (``MAX_ENTRIES`` is then how large the table grows before
      expired rows are purged on the next write).
    """

    # Django's own (django/core/cache/backends/db.py), not in its type stubs.
    _table: str

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        quote = connection.ops.quote_name
        with transaction.atomic(using=db), connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {quote(self._table)} SET {quote('expires')} = {quote('expires')} "
                f"WHERE {quote('cache_key')} = %s",
                [self.make_and_validate_key(key, version=version)],
            )
            return super().incr(key, delta, version)

    def _cull(self, db: str, cursor: Any, now: Any, num: int) -> None:
        connection = connections[db]
        quote = connection.ops.quote_name
        cursor.execute(
            f"DELETE FROM {quote(self._table)} WHERE {quote('expires')} < %s",
            [connection.ops.adapt_datetimefield_value(now)],
        )
