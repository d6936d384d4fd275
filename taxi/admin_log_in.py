"""The admin's log-in, throttled like the API's (trips/throttles.py).

Django's admin answers every password guess, as many as are sent. Here a
POST to its log-in form first counts against a budget per client address
(THROTTLE_ADMIN_LOG_IN) and per username from that address
(THROTTLE_ADMIN_LOG_IN_USER); over either, it gets a 429 with Retry-After
and the password is not checked.
"""

import math

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from trips.throttles import admin_log_in_wait


def admin_log_in(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    if request.method == "POST":
        wait_s = admin_log_in_wait(request)
        if wait_s is not None:
            retry_after = max(1, math.ceil(wait_s))
            response = HttpResponse(
                f"Too many log-in attempts; try again in {retry_after} s.\n",
                status=429,
                content_type="text/plain; charset=utf-8",
            )
            response["Retry-After"] = str(retry_after)
            return response
    return admin.site.login(request, extra_context)
