"""Parallel appends (SPEC §18, issue 16) with real processes: writers append without a lock, one sealer
chains them; a sealer killed mid-batch loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import seal_events, verify_chain
from tests.support.qcluster import database_url

BASE_DIR = Path(__file__).resolve().parents[3]
APPEND = """
import sys, django
django.setup()
from django.db import transaction
from audit.services import record_event
tag, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with transaction.atomic():
        record_event("config.changed", actor=tag, data={"i": i})
"""


def env() -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url()}


def manage(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own manage.py
        [sys.executable, str(BASE_DIR / "manage.py"), *args], cwd=BASE_DIR, env=env(), stdout=subprocess.DEVNULL
    )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writer processes: PostgreSQL")
class TestConcurrentAppends:
    def test_it_gives_appends_from_several_processes_one_verifiable_order(self, transactional_db: None) -> None:
        sealer = manage("audit_seal", "--loop", "--interval", "0.05", "--batch-size", "50")
        writers = [
            subprocess.Popen([sys.executable, "-c", APPEND, f"w{k}", "150"], cwd=BASE_DIR, env=env())  # noqa: S603
            for k in range(4)
        ]
        try:
            assert all(w.wait(120) == 0 for w in writers)
        finally:
            sealer.send_signal(signal.SIGKILL)
            sealer.wait(10)
        seal_events()
        assert verify_chain() == (600, None)
        chain = list(AuditEvent.objects.order_by("seq").values_list("seq", "actor", "data"))
        assert [seq for seq, _, _ in chain] == list(range(1, 601))
        for k in range(4):  # each writer's events in the order it committed them
            assert [data["i"] for _, actor, data in chain if actor == f"w{k}"] == list(range(150))


class TestKilledSealer:
    def test_a_sealer_killed_mid_batch_loses_and_duplicates_nothing(self, transactional_db: None) -> None:
        total = 20000
        now = timezone.now()
        AuditEvent.objects.bulk_create(
            AuditEvent(created_at=now, event_type="config.changed", actor=f"a{i}", data={"i": i}) for i in range(total)
        )
        sealer = manage("audit_seal", "--batch-size", "300")
        deadline = time.monotonic() + 60
        while not AuditEvent.objects.filter(seq__isnull=False).exists():
            assert sealer.poll() is None and time.monotonic() < deadline, "the sealer ended before it was killed"
            time.sleep(0.005)
        sealer.send_signal(signal.SIGKILL)  # mid-run: a batch in flight, more to come
        sealer.wait(10)
        sealed = AuditEvent.objects.filter(seq__isnull=False).count()
        assert 0 < sealed < total
        # What it committed is a verifiable prefix; the batch it was writing left no trace.
        assert verify_chain(seal=False) == (sealed, None)
        assert not AuditEvent.objects.filter(seq__isnull=True).exclude(hash=None).exists()
        assert seal_events() == total - sealed
        assert verify_chain() == (total, None)
        assert sorted(seq or 0 for seq in AuditEvent.objects.values_list("seq", flat=True)) == list(range(1, total + 1))
