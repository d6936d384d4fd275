from django.apps import AppConfig


class PricingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "pricing"
    verbose_name = "Products and prices"

    def ready(self) -> None:
        from pricing import signals  # noqa: F401 - connects the receivers
