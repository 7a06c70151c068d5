"""The django-q2 schedules this project relies on, kept in place by `ensure_schedules()`.

It runs after every `migrate` (post_migrate, see hitl.apps), so a fresh install, an upgrade and a
test database all get the minute sweep without anyone creating it by hand. Any `qcluster` runs it;
django-q2 locks the schedule row, so several clusters still start one sweep per minute.
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

SWEEP_NAME = "hitl-sweep"
SWEEP_FUNC = "hitl.tasks.sweep"
# Flow runs whose next step was committed but never enqueued (a worker died in between).
RECOVER_NAME = "flows-recover-stalled-runs"
RECOVER_FUNC = "flows.tasks.recover_stalled_runs"
# The audit log (SPEC §18): sealing is the worker's sealer thread's job every second; this is the
# backstop for clusters started without it (plain `qcluster`). Checkpoints every five minutes.
AUDIT_SEAL_NAME = "audit-seal"
AUDIT_SEAL_FUNC = "audit.tasks.seal"
AUDIT_CHECKPOINT_NAME = "audit-checkpoint"
AUDIT_CHECKPOINT_FUNC = "audit.tasks.checkpoint"
SCHEDULES = {
    SWEEP_NAME: {"func": SWEEP_FUNC, "minutes": 1},
    RECOVER_NAME: {"func": RECOVER_FUNC, "minutes": 5},
    AUDIT_SEAL_NAME: {"func": AUDIT_SEAL_FUNC, "minutes": 1},
    AUDIT_CHECKPOINT_NAME: {"func": AUDIT_CHECKPOINT_FUNC, "minutes": 5},
}


def ensure_schedules(using: str = DEFAULT_DB_ALIAS, **_: Any) -> None:
    from django_q.models import Schedule

    if Schedule._meta.db_table not in connections[using].introspection.table_names():
        return  # a partial migrate that has not reached django_q yet; the next full one does it
    for name, spec in SCHEDULES.items():
        wanted = {**spec, "schedule_type": Schedule.MINUTES, "repeats": -1}
        schedule, created = Schedule.objects.using(using).get_or_create(name=name, defaults=wanted)
        if not created and any(getattr(schedule, field) != value for field, value in wanted.items()):
            # Edited in the admin: put it back, every deadline depends on it.
            for field, value in wanted.items():
                setattr(schedule, field, value)
            schedule.save(using=using)
