from django.apps import AppConfig


class BenchConfig(AppConfig):
    """Installed only by `tests.bench.settings`: the baseline view and its table never exist in production."""

    name = "tests.bench"
    label = "bench"  # the label its migration was made under
    default_auto_field = "django.db.models.BigAutoField"
