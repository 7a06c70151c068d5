"""Trigram indexes for the inbox search on PostgreSQL, so a search over a million requests reads the
index instead of every row. Django writes `icontains` as `UPPER(col::text) LIKE UPPER('%q%')`, so the
indexes are on that expression (`message`, `flow_name`, `method_name`, `assigned_to_email`).

Needs the `pg_trgm` extension (in PostgreSQL's contrib, which Debian and the official images ship). If the
database user may not create it, the migration says so and carries on: search then scans, as on SQLite.
Indexes are built CONCURRENTLY (the migration is not atomic), so writes go on while they build.
"""

from django.db import migrations

INDEXES = {
    "hitl_search_message_trgm": "message",
    "hitl_search_flow_name_trgm": "flow_name",
    "hitl_search_method_name_trgm": "method_name",
    "hitl_search_assignee_trgm": "assigned_to_email",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone() is None:
            try:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            except Exception as exc:  # noqa: BLE001 - no privilege: search keeps working, by scanning
                print(f"\n  pg_trgm unavailable ({exc}); inbox search will scan the table.")
                return
        for name, column in INDEXES.items():
            cursor.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON hitl_hitlrequest "
                f"USING gin ((UPPER({column}::text)) gin_trgm_ops)"
            )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name in INDEXES:
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("hitl", "0007_assignee_lowercase_resolved_at_index")]

    operations = [migrations.RunPython(create, drop)]
