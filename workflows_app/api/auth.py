"""HTTP Basic authentication with an account's API key and secret, behind a brute-force brake."""

import base64
import binascii
import hashlib
import logging
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework import authentication, exceptions

from workflows_app.models import Account

logger = logging.getLogger(__name__)


class AccountPrincipal:
    """What ``request.user`` is for API calls: the authenticated account."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, account: Account) -> None:
        self.account = account

    def __str__(self) -> str:
        return self.account.api_key


class BasicAccountAuthentication(authentication.BaseAuthentication):
    """``Authorization: Basic base64(API_KEY:API_SECRET)`` (reference/vonage-api.md §1.6).

    Returns None for any other scheme (DRF then answers 401); raises AuthenticationFailed for
    malformed or wrong credentials, and Throttled (429 with Retry-After) while the client's IP
    or the api_key has too many recent failures (see :class:`FailureBrake`).
    """

    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return None
        brake = FailureBrake(client_ip=request.META.get("REMOTE_ADDR", ""))
        brake.check()
        try:
            api_key, api_secret = decode_basic_credentials(encoded)
        except exceptions.AuthenticationFailed:
            brake.record_failure()
            raise
        brake = FailureBrake(client_ip=brake.client_ip, api_key=api_key)
        brake.check()
        account = Account.objects.filter(api_key=api_key).first()
        if account is None or not account.check_secret(api_secret):
            brake.record_failure()
            raise exceptions.AuthenticationFailed("You did not provide correct credentials.")
        return AccountPrincipal(account), account

    def authenticate_header(self, request) -> str:
        return 'Basic realm="api"'


def decode_basic_credentials(encoded: bytes) -> tuple[str, str]:
    """``(api_key, api_secret)`` from the base64 part of a Basic header.

    Raises AuthenticationFailed unless it is base64 of UTF-8 ``key:secret`` without NUL
    characters (which PostgreSQL refuses in a query, so they would otherwise be a 500).
    """
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise exceptions.AuthenticationFailed("Malformed Basic credentials.") from exc
    api_key, sep, api_secret = decoded.partition(":")
    if not sep or "\x00" in decoded:
        raise exceptions.AuthenticationFailed("Malformed Basic credentials.")
    return api_key, api_secret


class FailureBrake:
    """Counts failed Basic logins per client IP and per api_key in the shared cache (Redis).

    Fixed windows of ``AUTH_FAILURE_WINDOW`` seconds: a counter key names its window, so it
    needs no reset and expires on its own; ``incr`` is atomic in Redis, so concurrent guesses
    from many web processes are all counted (unlike DRF's throttles, which reference/
    reliability.md §6 warns are neither atomic nor run before authentication). Once a counter
    reaches its limit, every request for that IP or key is refused with 429 until the window
    ends, correct credentials included: otherwise the brake would still tell a guesser which
    guess was right. The per-key limit is higher than the per-IP one because anyone who knows
    an api_key can spend its budget; REMOTE_ADDR is the client IP (no proxy header is trusted).
    """

    def __init__(self, *, client_ip: str, api_key: str | None = None) -> None:
        self.client_ip = client_ip
        self.api_key = api_key
        self.window = max(1, settings.AUTH_FAILURE_WINDOW)
        self.window_index, elapsed = divmod(int(time.time()), self.window)
        self.retry_after = self.window - elapsed

    def _counters(self) -> list[tuple[str, int]]:
        counters = [(f"ip:{self.client_ip}", settings.AUTH_FAILURE_LIMIT_PER_IP)]
        if self.api_key is not None:
            # Hashed: a key is caller input, and cache keys must stay short and printable.
            digest = hashlib.sha256(self.api_key.encode()).hexdigest()[:32]
            counters.append((f"key:{digest}", settings.AUTH_FAILURE_LIMIT_PER_KEY))
        return [
            (f"auth-failures:{name}:{self.window_index}", limit)
            for name, limit in counters
            if limit > 0
        ]

    def check(self) -> None:
        """Raise Throttled if a counter for this IP or key is at its limit in this window.

        Fails open: while the cache (Redis) is unreachable the brake is off, because an API
        that stops accepting runs whenever Redis restarts would break a bigger promise.
        """
        counters = self._counters()
        if not counters:
            return
        try:
            counts = cache.get_many([key for key, _ in counters])
        except Exception:  # the cache backend's own errors (redis.ConnectionError, ...)
            logger.warning("auth failure brake: cache unavailable, not checked", exc_info=True)
            return
        if any(counts.get(key, 0) >= limit for key, limit in counters):
            raise exceptions.Throttled(wait=self.retry_after)

    def record_failure(self) -> None:
        try:
            for key, _ in self._counters():
                cache.add(key, 0, timeout=self.window + 1)
                try:
                    cache.incr(key)
                except ValueError:  # expired between add and incr: the window just ended
                    cache.add(key, 1, timeout=self.window + 1)
        except Exception:
            logger.warning("auth failure brake: cache unavailable, not counted", exc_info=True)
