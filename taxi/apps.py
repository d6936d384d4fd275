"""The `taxi` app: the Celery app is created when Django starts, in every
process (web, worker, beat, management commands, tests), so services that
queue tasks by name (`workers.queue`) find it configured. `celery -A taxi`
finds `taxi.celery` on its own."""

from django.apps import AppConfig

from taxi.celery import app as celery_app


class TaxiConfig(AppConfig):
    name = "taxi"
    verbose_name = "Taxi"
    celery_app = celery_app
