"""REST's (and the socket's) Bearer authentication: simplejwt's, refusing the
access tokens of a log-in that logged out.

Revoking a refresh token (`POST /api/log_out/`) stops new access tokens; the
ones already minted from it would work until they expire. Each log-in has an
id (LOGIN_CLAIM) carried by its refresh token and every access token minted
from it; log-out marks that id revoked in Redis for as long as such an access
token can live (dispatch/keys.py), and this check refuses them: one Redis
EXISTS per Bearer request, nothing for session requests. With Redis away the
check lets the token through (logged): reads of the database, the truth, keep
working through an outage, as they did before log-ins had ids; the window is
an access token's life at most.
"""

import logging

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from redis.exceptions import RedisError
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken

from dispatch import keys
from taxi.infra.redis import get_redis

logger = logging.getLogger(__name__)

LOGIN_CLAIM = "login"


def login_revoke(login_id: str) -> None:
    get_redis().set(keys.revoked_login(login_id), 1, ex=keys.revoked_login_ttl_s())


def login_is_revoked(login_id: object) -> bool:
    if not isinstance(login_id, str) or not login_id:
        return False  # a token from before log-ins had ids: it expires by itself
    try:
        return bool(get_redis().exists(keys.revoked_login(login_id)))
    except (RedisError, OSError) as exc:
        logger.warning("auth.revocation_unknown", extra={"error": type(exc).__name__})
        return False


class LoginJWTAuthentication(JWTAuthentication):
    def get_validated_token(self, raw_token):
        token = super().get_validated_token(raw_token)
        if login_is_revoked(token.get(LOGIN_CLAIM)):
            raise InvalidToken({"detail": "This log-in was logged out.", "code": "token_not_valid"})
        return token


class LoginJWTScheme(SimpleJWTScheme):
    """The OpenAPI document describes it as simplejwt's Bearer scheme."""

    target_class = "trips.authentication.LoginJWTAuthentication"
