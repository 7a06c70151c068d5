"""The audit log is append-only in the database and tamper-evident through its keyed hash chain.
(The attacks of SPEC §18, checkpoints and sealing: test_integrity.py.)"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from audit.lib.triggers import triggers_disabled
from audit.models import GENESIS_HASH, AuditEvent
from audit.services import record_event, seal_events, verify_chain
from tests.support.base import World

pytestmark = pytest.mark.django_db


class TestAppendOnly:
    def test_the_database_refuses_update(self, world: World) -> None:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            AuditEvent.objects.update(actor="mallory")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE audit_auditevent SET actor = 'mallory'")

    def test_the_database_refuses_delete(self, world: World) -> None:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            AuditEvent.objects.all().delete()
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent")
        assert AuditEvent.objects.count() > 0

    @pytest.mark.skipif(connection.vendor != "postgresql", reason="TRUNCATE is PostgreSQL's")
    def test_postgres_refuses_truncate(self, world: World) -> None:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("TRUNCATE audit_auditevent")


class TestHashChain:
    def test_every_event_links_to_the_one_before(self, world: World) -> None:
        world.create()
        assert AuditEvent.objects.filter(seq__isnull=True).count() == AuditEvent.objects.count()  # not yet sealed
        assert seal_events() == AuditEvent.objects.count()
        events = list(AuditEvent.objects.order_by("seq"))
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[0].prev_hash == GENESIS_HASH
        for before, after in zip(events, events[1:], strict=False):
            assert after.prev_hash == before.hash
        assert verify_chain() == (len(events), None)

    def test_audit_verify_passes_on_an_intact_chain(self, world: World, capsys: pytest.CaptureFixture[str]) -> None:
        world.create()
        call_command("audit_verify")
        assert "audit chain intact" in capsys.readouterr().out

    def test_audit_verify_names_the_first_altered_event(self, world: World) -> None:
        world.create()
        seal_events()
        victim = AuditEvent.objects.order_by("id")[2]
        with triggers_disabled(), connection.cursor() as cursor:
            cursor.execute("UPDATE audit_auditevent SET actor = %s WHERE id = %s", ["mallory", victim.pk])
        with pytest.raises(CommandError, match=f"event {victim.pk}: hash does not match"):
            call_command("audit_verify")

    def test_audit_verify_catches_a_deleted_event(self, world: World) -> None:
        world.create()
        seal_events()
        victim = AuditEvent.objects.order_by("seq")[1]
        following = AuditEvent.objects.filter(seq__gt=victim.seq).order_by("seq").first()
        assert following is not None
        with triggers_disabled(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [victim.pk])
        with pytest.raises(CommandError, match=f"event {following.pk}: seq {following.seq} follows"):
            call_command("audit_verify")

    def test_the_triggers_are_back_after_a_maintenance_window(self, world: World) -> None:
        with triggers_disabled():
            pass
        with pytest.raises(DatabaseError), transaction.atomic():
            AuditEvent.objects.update(actor="mallory")

    def test_events_keep_json_data_verifiable(self, db: None) -> None:
        record_event("config.changed", actor="ops@example.com", data={"nested": {"b": 1, "a": [1, 2]}, "ü": "ß"})
        assert verify_chain()[1] is None
