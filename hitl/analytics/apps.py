from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Figures in SQL over requests and resolutions (SPEC §9): the page, its CSV tables and the API.
    No models of its own (rollups, SPEC §19, will be)."""

    name = "hitl.analytics"
    label = "analytics"
    verbose_name = "Analytics"
