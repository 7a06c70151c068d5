"""SPEC §18 against someone who can write the database but holds neither key: each attack, carried out
on the real database (SQLite and PostgreSQL), is detected by `audit_verify` or refused by the database."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from audit.lib.keys import generate_signing_key, public_key_of
from audit.lib.triggers import triggers_disabled
from audit.models import GENESIS_HASH, AuditEvent, canonical_json
from audit.services import make_checkpoint, record_event, seal_events, verify_chain, verify_checkpoint

pytestmark = pytest.mark.django_db


def events(n: int) -> list[AuditEvent]:
    for i in range(n):
        record_event("config.changed", actor=f"ops{i}@example.com", data={"i": i})
    seal_events()
    return list(AuditEvent.objects.order_by("seq"))


def rehash_from(seq: int, digest: Any) -> None:
    """The attacker re-chains every event from `seq` on with `digest` (they lack HITL_AUDIT_KEY)."""
    prev = str(AuditEvent.objects.get(seq=seq - 1).hash) if seq > 1 else GENESIS_HASH
    with triggers_disabled(), connection.cursor() as cursor:
        for event in AuditEvent.objects.filter(seq__gte=seq).order_by("seq"):
            event.prev_hash = prev
            event.hash = digest(canonical_json(event.sealed_fields()).encode())
            cursor.execute(
                "UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE id = %s", [prev, event.hash, event.pk]
            )
            prev = str(event.hash)


def checkpoint_file(tmp_path: Path, name: str = "cp.json") -> str:
    path = tmp_path / name
    call_command("audit_checkpoint", output=str(path))
    return str(path)


class TestKeyedHashes:
    @pytest.mark.parametrize(
        "digest",
        [
            lambda m: hashlib.sha256(m).hexdigest(),  # the old, unkeyed scheme
            lambda m: __import__("hmac").new(b"a guessed key", m, hashlib.sha256).hexdigest(),
        ],
        ids=["sha256", "wrong-key"],
    )
    def test_it_detects_an_event_edited_and_rehashed_without_the_key(self, db: None, digest: Any) -> None:
        victim = events(6)[2]
        with triggers_disabled(), connection.cursor() as cursor:
            cursor.execute("UPDATE audit_auditevent SET actor = %s WHERE id = %s", ["mallory", victim.pk])
        rehash_from(3, digest)
        with pytest.raises(CommandError, match=f"event {victim.pk}: hash does not match the event's contents"):
            call_command("audit_verify")

    def test_it_verifies_events_sealed_before_a_key_rotation(self, db: None, settings: Any) -> None:
        events(3)
        old = settings.HITL_AUDIT_KEY
        settings.HITL_AUDIT_KEY = "the-next-audit-key"
        assert verify_chain()[1] is not None
        settings.HITL_AUDIT_KEY_FALLBACKS = [old]
        record_event("config.changed")
        assert verify_chain() == (4, None)
        assert AuditEvent.objects.get(seq=4).compute_hash(b"the-next-audit-key") == AuditEvent.objects.get(seq=4).hash


class TestCheckpoints:
    def test_it_signs_a_checkpoint_and_sends_it_out(
        self, db: None, settings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        settings.HITL_AUDIT_CHECKPOINT_FILE = str(tmp_path / "anchors.jsonl")
        settings.HITL_AUDIT_ANCHOR_EMAILS = ["auditor@example.com"]
        events(4)
        record_event("config.changed")  # waiting: the checkpoint seals it first
        path = checkpoint_file(tmp_path)
        assert capsys.readouterr().out.splitlines()[-1] == path
        checkpoint = json.loads(Path(path).read_text())
        assert checkpoint["count"] == 5 and checkpoint["head_hash"] == AuditEvent.objects.get(seq=5).hash
        assert set(checkpoint) == {"count", "head_hash", "time", "key_id", "signature"}
        assert json.loads(Path(settings.HITL_AUDIT_CHECKPOINT_FILE).read_text()) == checkpoint
        from django.core import mail

        assert mail.outbox[-1].to == ["auditor@example.com"] and canonical_json(checkpoint) in mail.outbox[-1].body
        call_command("audit_verify", checkpoint=[path])
        assert "consistent with 1 signed checkpoint" in capsys.readouterr().out

    def test_it_detects_a_cut_tail(self, db: None, tmp_path: Path) -> None:
        log = events(5)
        path = checkpoint_file(tmp_path)
        with triggers_disabled(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent WHERE seq >= 4")
        call_command("audit_verify")  # without the checkpoint, a shorter chain is still a chain
        with pytest.raises(CommandError, match="counts 5 sealed events, the database holds 3: events were removed"):
            call_command("audit_verify", checkpoint=[path])
        assert len(log) == 5

    def test_it_detects_a_restored_old_backup(self, db: None, tmp_path: Path) -> None:
        events(3)
        backup = list(AuditEvent.objects.order_by("id").values())
        events(3)
        newer = checkpoint_file(tmp_path)
        # Restore the backup taken at 3 events: the newer checkpoint counts more than the log holds …
        with triggers_disabled(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent WHERE id > %s", [backup[-1]["id"]])
        with pytest.raises(CommandError, match="or an older backup was restored"):
            call_command("audit_verify", checkpoint=[newer])
        # … and once the restored server has written on past that count, the head no longer matches.
        events(3)
        with pytest.raises(CommandError, match="does not carry the hash of the checkpoint"):
            call_command("audit_verify", checkpoint=[newer])

    def test_it_refuses_a_forged_checkpoint(self, db: None, tmp_path: Path) -> None:
        events(2)
        path = Path(checkpoint_file(tmp_path))
        forged = {**json.loads(path.read_text()), "count": 1, "head_hash": AuditEvent.objects.get(seq=1).hash}
        path.write_text(json.dumps(forged))
        with pytest.raises(CommandError, match="signature is not valid"):
            call_command("audit_verify", checkpoint=[str(path)])

    def test_old_checkpoints_verify_after_a_signing_key_rotation(self, db: None, settings: Any, tmp_path: Path) -> None:
        events(2)
        old = settings.HITL_AUDIT_SIGNING_KEY
        path = checkpoint_file(tmp_path, "old.json")
        settings.HITL_AUDIT_SIGNING_KEY = generate_signing_key()
        with pytest.raises(CommandError, match="not among the trusted public keys"):
            call_command("audit_verify", checkpoint=[path])
        settings.HITL_AUDIT_VERIFY_KEYS = [public_key_of(old)]
        events(1)
        call_command("audit_verify", checkpoint=[path, checkpoint_file(tmp_path, "new.json")])

    def test_an_empty_log_checkpoints_and_verifies(self, db: None) -> None:
        checkpoint = make_checkpoint()
        assert checkpoint["count"] == 0 and checkpoint["head_hash"] == GENESIS_HASH
        assert verify_checkpoint(checkpoint) == []


class TestAppendOnlyTriggers:
    def test_it_refuses_replace(self, db: None) -> None:
        victim = events(2)[0]
        columns = "id, created_at, event_type, actor, source, target_type, target_id, deployment_id, data, prev_hash"
        values = "%s, %s, 'config.changed', 'mallory', '', '', '', NULL, '{}', ''"
        statements = (
            [f"INSERT OR REPLACE INTO audit_auditevent ({columns}) VALUES ({values})"]  # noqa: S608
            + [f"REPLACE INTO audit_auditevent ({columns}) VALUES ({values})"]  # noqa: S608
            if connection.vendor == "sqlite"
            else [
                f"INSERT INTO audit_auditevent ({columns}) VALUES ({values}) "  # noqa: S608
                "ON CONFLICT (id) DO UPDATE SET actor = EXCLUDED.actor"
            ]
        )
        for statement in statements:
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as c:
                c.execute(statement, [victim.pk, victim.created_at])
        assert AuditEvent.objects.get(pk=victim.pk).actor == victim.actor
        assert verify_chain() == (2, None)

    def test_it_refuses_a_second_sealing(self, db: None) -> None:
        victim = events(2)[1]
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as c:
            c.execute("UPDATE audit_auditevent SET hash = %s WHERE id = %s", ["f" * 64, victim.pk])
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            AuditEvent.objects.filter(pk=victim.pk).update(seq=None, hash=None)

    def test_it_refuses_changing_an_unsealed_event(self, db: None) -> None:
        event = record_event("config.changed")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            AuditEvent.objects.filter(pk=event.pk).update(actor="mallory")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            AuditEvent.objects.filter(pk=event.pk).update(actor="mallory", seq=1, hash="f" * 64)

    @pytest.mark.skipif(connection.vendor != "postgresql", reason="session_replication_role is PostgreSQL's")
    def test_the_triggers_fire_even_under_session_replication_role(self, db: None) -> None:
        """A superuser's one-transaction switch (issue 16): the triggers are ENABLE ALWAYS."""
        victim = events(1)[0]
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as c:
            c.execute("SET LOCAL session_replication_role = replica")
            c.execute("UPDATE audit_auditevent SET actor = 'mallory' WHERE id = %s", [victim.pk])
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as c:
            c.execute("SET LOCAL session_replication_role = replica")
            c.execute("DELETE FROM audit_auditevent")


class TestUnsealedAlarm:
    def test_audit_verify_alarms_on_an_event_unsealed_for_over_a_minute(self, db: None) -> None:
        from datetime import timedelta

        from django.utils import timezone

        event = record_event("config.changed")
        with triggers_disabled():
            AuditEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(minutes=2))
        with pytest.raises(CommandError, match="1 audit events have waited unsealed since"):
            call_command("audit_verify")
        call_command("audit_verify")  # the first run sealed it


class TestLegacyLog:
    """Logs written before keyed sealing: an unkeyed SHA-256 chain, no seq."""

    def legacy(self, n: int) -> list[AuditEvent]:
        prev = GENESIS_HASH
        from django.utils import timezone

        rows = []
        for i in range(n):
            event = AuditEvent(created_at=timezone.now(), event_type="config.changed", actor=f"old{i}", prev_hash=prev)
            event.hash = event.compute_legacy_hash()
            prev = str(event.hash)
            event.save(force_insert=True)
            rows.append(event)
        return rows

    def test_it_verifies_the_old_chain_then_seals_it_first(self, db: None, capsys: pytest.CaptureFixture[str]) -> None:
        old = self.legacy(4)
        newer = record_event("config.changed", actor="after the upgrade")
        assert verify_chain()[1] is not None  # the sealer waits for the resealing
        assert "audit_seal_legacy" in verify_chain()[1].reason  # type: ignore[union-attr]
        call_command("audit_seal_legacy")
        assert capsys.readouterr().out.splitlines()[-1] == "4"
        assert verify_chain() == (6, None)  # 4 old, the new one, and the audit.resealed event
        sealed = list(AuditEvent.objects.order_by("seq").values_list("id", flat=True))
        assert sealed[:5] == [*(e.pk for e in old), newer.pk]
        resealed = AuditEvent.objects.get(event_type="audit.resealed")
        assert resealed.data["legacy_count"] == 4 and resealed.data["legacy_last_hash"] == old[-1].hash

    def test_it_refuses_a_broken_old_chain_and_changes_nothing(self, db: None) -> None:
        old = self.legacy(3)
        with triggers_disabled():
            AuditEvent.objects.filter(pk=old[1].pk).update(actor="mallory")
        with pytest.raises(CommandError, match=f"refused, nothing changed.*event {old[1].pk}: hash does not match"):
            call_command("audit_seal_legacy")
        assert not AuditEvent.objects.filter(seq__isnull=False).exists()
