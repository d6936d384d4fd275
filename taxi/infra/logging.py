"""Structured log lines, with credentials scrubbed before they are written."""

import json
import logging
import re
from datetime import UTC, datetime

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

_CREDENTIAL_NAMES = r"(?:token|access|refresh|password\d?|sessionid|csrftoken)"
# A JWT (three base64url parts, the first two starting with '{"' encoded), and
# credentials passed as query parameters, cookies, headers or JSON fields.
_SECRET_PATTERNS = [
    re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+"),
    re.compile(rf"(?i)({_CREDENTIAL_NAMES}=)[^&;\s\"']+"),
    re.compile(r"(?i)(authorization:\s*bearer\s+)\S+"),
    re.compile(rf'(?i)("{_CREDENTIAL_NAMES}"\s*:\s*")(?:[^"\\]|\\.)*(?=")'),
]


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[redacted]", text)
    return text


class RedactSecretsFilter(logging.Filter):
    """Rewrites a record's message so no token or password reaches a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A broken log call: let the handler report it as logging does,
            # rather than raise into the code that logged.
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class StructuredFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, event, and the `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))
