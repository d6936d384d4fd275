"""What every sender answers, and the errors it raises.

A sender makes one provider call for one device. It returns DELIVERED (the
provider took the notification) or INVALID_TOKEN (the provider says the
device is gone or was never its: the caller deletes it), raises
`TransientPushError` for what a later try may fix (timeouts, connection
errors, 429, 5xx), and `PushRejected` for what it will not (a refused
payload, a configuration the provider refuses). Error messages name the
provider's status and reason only: never a token, a URL or a credential, so
they are safe to log (Celery logs a retried task's exception).
"""

import enum

from notifications.messages import Notification


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    INVALID_TOKEN = "invalid_token"  # noqa: S105 - an outcome, not a password


class PushError(Exception):
    pass


class TransientPushError(PushError):
    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PushRejected(PushError):
    pass


def retry_after(value: str | None) -> float | None:
    """A Retry-After header's seconds (the HTTP-date form is not used by
    these providers), capped at 10 minutes."""
    if value and value.strip().isdigit():
        return min(600.0, float(value.strip()))
    return None


class Sender:
    platform: str

    def send(self, token: str, notification: Notification) -> Outcome:
        raise NotImplementedError
