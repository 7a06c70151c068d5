"""`flush` that lifts the audit triggers for its duration.

Django's own flush (and so every transactional test's teardown) empties all tables; the append-only
triggers would rightly refuse that. Flushing is a deliberate, whole-database administrative act.
"""

from typing import Any

from django.core.management.commands.flush import Command as FlushCommand

from audit.lib.triggers import triggers_disabled


class Command(FlushCommand):
    def handle(self, **options: Any) -> None:
        with triggers_disabled(options.get("database", "default")):
            super().handle(**options)
