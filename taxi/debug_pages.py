"""DEBUG pages without credentials (settings.DEFAULT_EXCEPTION_REPORTER*).

Django's debug page lists the settings, the request and every frame's local
variables. It hides settings whose *names* look secret (PASSWORD, KEY,
TOKEN...), but DATABASE_URL, REDIS_URL, CELERY_BROKER_URL and the URLs inside
CACHES and CHANNEL_LAYERS carry their password in the value
(`postgres://user:password@host`). Here the userinfo of any URL, at any depth
of a setting, a header or a local variable, is masked, and the rendered page
is scrubbed once more for anything that slipped past.
"""

import re

from django.views import debug

MASK = "********"
# scheme://userinfo@ : whatever sits between `//` and the first `@` of a URL's
# authority (no `/`, whitespace or quote on the way).
URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/@\s'\"<>]+@")


def scrub_url_credentials(text: str) -> str:
    """`text` with the userinfo (`user:password@`) of every URL in it masked."""
    return URL_USERINFO.sub(rf"\g<1>{MASK}@", text)


class SafeExceptionReporterFilter(debug.SafeExceptionReporterFilter):
    def cleanse_setting(self, key, value):
        # Django's version recurses through dicts, lists and tuples by calling
        # this method, so every string at every depth comes through here.
        value = super().cleanse_setting(key, value)
        if isinstance(value, str):
            return scrub_url_credentials(value)
        return value

    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (name, self.cleanse_setting(name, value))
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]


class ExceptionReporter(debug.ExceptionReporter):
    """The page as rendered, scrubbed again: a URL in an exception's message,
    or one pprint split across lines and rejoined, is caught here."""

    def get_traceback_html(self) -> str:
        return scrub_url_credentials(super().get_traceback_html())

    def get_traceback_text(self) -> str:
        return scrub_url_credentials(super().get_traceback_text())
