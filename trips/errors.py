"""The one error family. Every domain error carries a stable `code`.

REST answers `{"detail", "code"}` with the status below; the WebSocket consumer
sends an `error` frame with the same code.
"""


class DomainError(Exception):
    code = "invalid"
    http_status = 400
    default_detail = "The request is invalid."

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.default_detail
        super().__init__(self.detail)


class InvalidInput(DomainError):
    code = "invalid"
    http_status = 400
    default_detail = "The request is invalid."


class Forbidden(DomainError):
    code = "forbidden"
    http_status = 403
    default_detail = "You may not do that."


class NotFound(DomainError):
    code = "not_found"
    http_status = 404
    default_detail = "Not found."


class InvalidTransition(DomainError):
    code = "invalid_transition"
    http_status = 409
    default_detail = "The trip cannot move to that status now."


class OfferNotAvailable(DomainError):
    code = "offer_not_available"
    http_status = 409
    default_detail = "You hold no live offer for this trip."


class ActiveTripExists(DomainError):
    code = "active_trip_exists"
    http_status = 409
    default_detail = "You already have an active trip."


class QuoteExpired(DomainError):
    code = "quote_expired"
    http_status = 409
    default_detail = "The quote has expired; ask for a new one."


class QuoteMismatch(DomainError):
    code = "quote_mismatch"
    http_status = 400
    default_detail = "The quote is for another product or other places."


class InvalidPin(DomainError):
    code = "invalid_pin"
    http_status = 409
    default_detail = "That is not the rider's PIN."


class PinLocked(DomainError):
    code = "pin_locked"
    http_status = 409
    default_detail = "Too many wrong PINs: this trip can only be canceled now."


class TooEarly(DomainError):
    code = "too_early"
    http_status = 409
    default_detail = "The rider's no-show wait is not over yet."


class TooManyScheduled(DomainError):
    code = "too_many_scheduled"
    http_status = 409
    default_detail = "You already have the most scheduled trips allowed."


class RateLimited(DomainError):
    """Too many requests of one kind (the socket's share of a REST throttle)."""

    code = "rate_limited"
    http_status = 429
    default_detail = "Too many requests; try again later."

    def __init__(self, detail: str | None = None, *, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        if detail is None and retry_after_s is not None:
            detail = f"Too many requests; try again in {max(1, round(retry_after_s))} s."
        super().__init__(detail)


class Unavailable(DomainError):
    code = "unavailable"
    http_status = 503
    default_detail = "A backing service is unavailable right now; try again shortly."


class AlreadyRated(DomainError):
    code = "already_rated"
    http_status = 409
    default_detail = "This trip already has your rating."


class NotRateable(DomainError):
    """The trip is not COMPLETED, or its rating window (RATING_WINDOW_S after
    it ended) has closed."""

    code = "not_rateable"
    http_status = 409
    default_detail = "This trip cannot be rated: it is not completed, or it ended too long ago."


class NotShareable(DomainError):
    code = "not_shareable"
    http_status = 409
    default_detail = "This trip has ended: it can no longer be shared."
