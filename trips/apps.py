from django.apps import AppConfig


class TripsConfig(AppConfig):
    name = "trips"
    default_auto_field = "django.db.models.BigAutoField"
