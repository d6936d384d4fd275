"""Throttles for the calls brute force and floods aim at: log-in, sign-up and
trip requests (429 `rate_limited` with Retry-After; rates in settings,
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]).

- per client address (`ScopeThrottle`, DRF's scoped throttle): log-in and
  sign-up. The address is the connection's, or behind NUM_PROXIES trusted
  proxies the one the outermost proxy saw (settings.py);
- per username and address (`LogInUsernameThrottle`): log-in attempts on
  one account from one address. Keyed by the username alone, anyone could
  spend a victim's budget from anywhere and lock them out; keyed by both,
  an address shared by many (a NAT) can get a larger per-address rate
  while each account's guesses from it stay limited;
- the admin's log-in form (`admin_log_in_wait`): the same two, with their
  own rates;
- per rider (`TripCreateThrottle`): trip requests over REST and over the
  socket share one budget.

DRF's classes read their rates once, at import; these read them on every
check, so a changed setting (a test's `settings` fixture) takes effect.
"""

import hashlib
from types import SimpleNamespace

from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from trips.errors import RateLimited
from trips.models import User


class _CurrentRates:
    @property
    def THROTTLE_RATES(self) -> dict:  # noqa: N802 - DRF's attribute name
        return api_settings.DEFAULT_THROTTLE_RATES


class ScopeThrottle(_CurrentRates, ScopedRateThrottle):
    """The view's `throttle_scope`, per user when logged in, else per address."""


class LogInUsernameThrottle(_CurrentRates, SimpleRateThrottle):
    """Log-in attempts naming one username from one client address. The name
    is compared as the log-in reads it (surrounding spaces trimmed) and in
    any case, so spelling variants share one budget. A body without a usable
    username is left to the address throttle and the serializer's 400."""

    scope = "log_in_user"

    def get_cache_key(self, request: Request | HttpRequest, view) -> str | None:
        # A DRF request's parsed body, or a Django form's POST (the admin).
        data = request.data if isinstance(request, Request) else request.POST
        username = data.get("username") if hasattr(data, "get") else None
        if not isinstance(username, str) or not username.strip():
            return None
        who = f"{username.strip().lower()}\n{self.get_ident(request)}"
        digest = hashlib.sha256(who.encode("utf-8", "surrogatepass"))
        return self.cache_format % {"scope": self.scope, "ident": digest.hexdigest()}


class AdminLogInThrottle(_CurrentRates, SimpleRateThrottle):
    """The admin's log-in form, per client address."""

    scope = "admin_log_in"

    def get_cache_key(self, request: HttpRequest, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class AdminLogInUsernameThrottle(LogInUsernameThrottle):
    scope = "admin_log_in_user"


def admin_log_in_wait(request: HttpRequest) -> float | None:
    """Count one attempt on the admin's log-in form: the seconds to wait when
    it is over either budget, else None."""
    for throttle in (AdminLogInThrottle(), AdminLogInUsernameThrottle()):
        if not throttle.allow_request(request, None):
            return throttle.wait() or 1.0
    return None


class TripCreateThrottle(_CurrentRates, SimpleRateThrottle):
    """Trip requests per rider: `POST /api/trip/` and the socket's `create.trip`."""

    scope = "trip_create"

    def get_cache_key(self, request: Request, view) -> str | None:
        user = request.user
        if not (user and user.is_authenticated):
            return None
        return self.cache_format % {"scope": self.scope, "ident": user.pk}


def trip_create_throttle_check(*, user: User) -> None:
    """Count one trip request by `user` (the socket's path to the REST
    call's budget); RateLimited when over it. Sync: it talks to the cache."""
    throttle = TripCreateThrottle()
    if not throttle.allow_request(SimpleNamespace(user=user), None):
        raise RateLimited(retry_after_s=throttle.wait())
