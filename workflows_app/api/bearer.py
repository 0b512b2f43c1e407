"""Verifying an application's JWT (``Authorization: Bearer``), as Vonage defines it.

Facts (reference/vonage-api.md §1.6): RS256 only; claims ``application_id``, ``iat``, ``jti``,
optional ``nbf`` and ``exp``; ``exp`` defaults to 15 minutes after ``iat`` and must lie between
30 s and 24 h after it. Security rules (reference/reliability.md §6): the algorithm is pinned,
never read from the token; an unverified claim is used only to find the application whose stored
public key then verifies the token; PyJWT does not bound a token's age, so we do; every ``jti``
is remembered until its token expires and a repeat is refused.
"""

import time
import uuid
from typing import Any

import jwt
from django.conf import settings
from django.core.cache import cache

from workflows_app.api.problems import Problem, problem_body
from workflows_app.models import Application

ALGORITHM = "RS256"
MAX_JTI_LENGTH = 255


class JwtRefused(Exception):
    """Why a token was refused: a Vonage error slug and a sentence for the caller."""

    def __init__(self, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.slug, self.detail = slug, detail


def application_for_token(token: str) -> Application:
    """The application that signed ``token``, after every check; raises :class:`JwtRefused`."""
    header = _header(token)
    if header.get("alg") != ALGORITHM:
        raise JwtRefused("unauthorized", "Only RS256-signed JWTs are accepted.")
    application = _application(token)
    claims = _verified_claims(token, application)
    _check_lifetime(claims)
    _remember_jti(application, claims)
    return application


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise JwtRefused("unauthorized", "The bearer token is not a JWT.") from exc


def _application(token: str) -> Application:
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise JwtRefused("unauthorized", "The bearer token is not a JWT.") from exc
    try:
        application_id = uuid.UUID(str(unverified.get("application_id")))
    except ValueError as exc:
        raise JwtRefused("unauthorized", "The JWT has no valid application_id claim.") from exc
    application = Application.objects.select_related("account").filter(id=application_id).first()
    if application is None:
        raise JwtRefused("invalid-api-key", "The JWT's application_id is not a known application.")
    return application


def _verified_claims(token: str, application: Application) -> dict[str, Any]:
    try:
        return jwt.decode(
            token,
            application.public_key,
            algorithms=[ALGORITHM],  # pinned: never taken from the token's header
            leeway=settings.JWT_LEEWAY,
            options={"require": ["iat", "jti", "application_id"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError as exc:
        raise JwtRefused("jwt-expired", "The JWT has expired.") from exc
    except jwt.ImmatureSignatureError as exc:
        raise JwtRefused("unauthorized", "The JWT is not valid yet (iat or nbf).") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise JwtRefused("unauthorized", f"The JWT has no {exc.claim} claim.") from exc
    except jwt.PyJWTError as exc:
        raise JwtRefused("unauthorized", "The JWT's signature or claims are invalid.") from exc


def _check_lifetime(claims: dict[str, Any]) -> None:
    """Bound the token's lifetime and age; PyJWT alone accepts a years-old token without ``exp``."""
    iat, exp = claims["iat"], claims.get("exp")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise JwtRefused("unauthorized", "The JWT's iat claim must be a number.")
    lifetime = settings.JWT_DEFAULT_LIFETIME if exp is None else exp - iat
    if not settings.JWT_MIN_LIFETIME <= lifetime <= settings.JWT_MAX_LIFETIME:
        raise JwtRefused(
            "unauthorized",
            f"The JWT's exp must be between {settings.JWT_MIN_LIFETIME} and "
            f"{settings.JWT_MAX_LIFETIME} seconds after its iat.",
        )
    if _now() > iat + lifetime + settings.JWT_LEEWAY:
        raise JwtRefused("jwt-expired", "The JWT has expired.")
    jti = claims["jti"]
    if not isinstance(jti, str) or not 1 <= len(jti) <= MAX_JTI_LENGTH:
        raise JwtRefused("unauthorized", "The JWT's jti claim must be a string of 1-255 chars.")


def _remember_jti(application: Application, claims: dict[str, Any]) -> None:
    """Refuse a ``jti`` seen before; remember this one until its token can no longer be used.

    ``cache.add`` is atomic on the shared cache, so two web processes cannot both accept one
    token: a ``SET NX EX`` on Redis, an INSERT under the primary key of the database cache of
    embedded mode (orchestrator/cache.py, which never drops an entry before it expires).
    """
    if not settings.JWT_SINGLE_USE:
        return
    iat = claims["iat"]
    expires = claims.get("exp", iat + settings.JWT_DEFAULT_LIFETIME)
    ttl = max(1, int(expires - _now() + settings.JWT_LEEWAY) + 1)
    key = f"jwt-jti:{application.id}:{uuid.uuid5(uuid.NAMESPACE_URL, claims['jti'])}"
    try:
        first_use = cache.add(key, 1, timeout=ttl)
    except Exception as exc:  # the cache backend's own errors (redis.ConnectionError, ...)
        # Fail closed: without the replay check a captured token could be used again.
        raise Problem(
            503,
            problem_body(503, detail="JWT replay protection is unavailable; please retry."),
            {"Retry-After": str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER)},
        ) from exc
    if not first_use:
        raise JwtRefused("jwt-revoked", "This JWT (its jti) has already been used.")


def _now() -> float:
    return time.time()
