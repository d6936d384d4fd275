from django.apps import AppConfig


class PagesConfig(AppConfig):
    """The web pages (PROTOCOL.md Part 2, "Web pages"): the landing page, the
    rider and driver app, and the staff console with its live stream."""

    name = "pages"

    def ready(self) -> None:
        from pages import signals  # noqa: F401 - connects the receiver
