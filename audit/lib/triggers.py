"""Database triggers that make the audit table append-only, on SQLite and PostgreSQL.

What they allow: INSERT of a new event, and one UPDATE of an unsealed event (`seq` still NULL) that
seals it: sets `seq` and `hash`, `prev_hash` too, and changes no other column. What they refuse:
every other UPDATE (content, or a seal once set), DELETE, TRUNCATE (PostgreSQL), and on SQLite an
INSERT that would collide with an existing row: `INSERT OR REPLACE`/`REPLACE` resolves a conflict by
deleting the old row *without* firing DELETE triggers, so the BEFORE INSERT trigger refuses any insert
whose id, seq or hash already exists, before conflict resolution can happen. (`INSERT … ON CONFLICT DO
UPDATE` goes through the UPDATE trigger.)

The only way past them is DDL (dropping the triggers, or on PostgreSQL `session_replication_role`,
which needs a superuser): `triggers_disabled()` does it for Django's `flush` (test teardown) and for
tests that play the attacker. On PostgreSQL the app's role owns nothing and is no superuser
(docs/postgres-app-role.sql), so it cannot.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

TABLE = "audit_auditevent"
MESSAGE = "audit events are append-only"
CONTENT = ("id", "created_at", "event_type", "actor", "source", "target_type", "target_id", "deployment_id", "data")

_SQLITE_SAME = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in CONTENT)
SQLITE_INSTALL = [
    "DROP TRIGGER IF EXISTS audit_no_update;",
    f"CREATE TRIGGER audit_no_update BEFORE UPDATE ON {TABLE} "
    f"WHEN NOT (OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.hash IS NOT NULL AND {_SQLITE_SAME}) "
    f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;",
    f"CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON {TABLE} "
    f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;",
    "DROP TRIGGER IF EXISTS audit_no_replace;",
    f"CREATE TRIGGER audit_no_replace BEFORE INSERT ON {TABLE} "  # noqa: S608 - constants
    f"WHEN EXISTS (SELECT 1 FROM {TABLE} WHERE id = NEW.id OR seq = NEW.seq OR hash = NEW.hash) "
    f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS audit_no_update;",
    "DROP TRIGGER IF EXISTS audit_no_delete;",
    "DROP TRIGGER IF EXISTS audit_no_replace;",
]

_PG_OLD = ", ".join(f"OLD.{c}" for c in CONTENT)
_PG_NEW = ", ".join(f"NEW.{c}" for c in CONTENT)
POSTGRES_INSTALL = [
    f"""CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END;
    $$ LANGUAGE plpgsql;""",
    f"""CREATE OR REPLACE FUNCTION audit_allow_seal() RETURNS trigger AS $$
    BEGIN
      IF OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.hash IS NOT NULL
         AND ROW({_PG_NEW}) IS NOT DISTINCT FROM ROW({_PG_OLD}) THEN
        RETURN NEW;
      END IF;
      RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege';
    END;
    $$ LANGUAGE plpgsql;""",
    f"DROP TRIGGER IF EXISTS audit_no_update_delete ON {TABLE};",
    f"DROP TRIGGER IF EXISTS audit_seal_only ON {TABLE};",
    f"CREATE TRIGGER audit_seal_only BEFORE UPDATE ON {TABLE} FOR EACH ROW EXECUTE FUNCTION audit_allow_seal();",
    f"DROP TRIGGER IF EXISTS audit_no_delete ON {TABLE};",
    f"CREATE TRIGGER audit_no_delete BEFORE DELETE ON {TABLE} FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();",
    f"DROP TRIGGER IF EXISTS audit_no_truncate ON {TABLE};",
    f"CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON {TABLE} "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();",
    # ENABLE ALWAYS: the triggers fire even under session_replication_role = replica (a superuser's
    # one-transaction switch); only DDL by the owner can remove them.
    f"ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER audit_seal_only;",
    f"ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER audit_no_delete;",
    f"ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER audit_no_truncate;",
]
POSTGRES_DROP = [
    f"DROP TRIGGER IF EXISTS audit_no_update_delete ON {TABLE};",
    f"DROP TRIGGER IF EXISTS audit_seal_only ON {TABLE};",
    f"DROP TRIGGER IF EXISTS audit_no_delete ON {TABLE};",
    f"DROP TRIGGER IF EXISTS audit_no_truncate ON {TABLE};",
]
# What migration 0002 installed, for 0004's reverse.
POSTGRES_INSTALL_V1 = [
    POSTGRES_INSTALL[0],
    f"CREATE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON {TABLE} "
    "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();",
    f"CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON {TABLE} "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();",
]
SQLITE_INSTALL_V1 = [
    f"CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON {TABLE} "
    f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;",
    f"CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON {TABLE} "
    f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;",
]


def _statements(connection: BaseDatabaseWrapper, install: bool) -> list[str]:
    if connection.vendor == "sqlite":
        return SQLITE_INSTALL if install else SQLITE_DROP
    if connection.vendor == "postgresql":
        return POSTGRES_INSTALL if install else POSTGRES_DROP
    raise NotImplementedError(f"append-only audit triggers are not written for {connection.vendor}")


def install_triggers(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        for statement in _statements(connection, install=True):
            cursor.execute(statement)


def drop_triggers(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        for statement in _statements(connection, install=False):
            cursor.execute(statement)


def install_v1_triggers(connection: BaseDatabaseWrapper) -> None:
    drop_triggers(connection)
    with connection.cursor() as cursor:
        for statement in SQLITE_INSTALL_V1 if connection.vendor == "sqlite" else POSTGRES_INSTALL_V1:
            cursor.execute(statement)


@contextmanager
def triggers_disabled(using: str = "default") -> Iterator[None]:
    connection = connections[using]
    drop_triggers(connection)
    try:
        yield
    finally:
        install_triggers(connection)
