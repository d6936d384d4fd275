"""The project's wiring: settings, URLs, ASGI routing, the Celery app (and the
`taxi` app that loads it, `taxi.apps`). Shared infrastructure is `taxi.infra`;
importing it does not bring the wiring along."""
