"""Shared infrastructure the apps build on: Redis clients, the channel layer,
the push transport, parsers, the OpenAPI schema class, logging and process
tuning. It imports no app and none of the wiring above it (settings, URLs,
ASGI routing, the Celery app), so any layer may use it."""
