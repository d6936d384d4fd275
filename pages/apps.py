from django.apps import AppConfig


class PagesConfig(AppConfig):
    """The web pages (PROTOCOL.md Part 2, "Web pages"): the landing page, the
    rider and driver app, and the staff console with its live stream."""

    name = "pages"
