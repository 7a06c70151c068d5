from django.apps import AppConfig


class BenchConfig(AppConfig):
    """Installed only by `bench.settings`: the baseline view and its table never exist in production."""

    name = "bench"
    default_auto_field = "django.db.models.BigAutoField"
