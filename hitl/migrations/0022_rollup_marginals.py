"""Issue 21: the rollup rows of all flows and methods (flow and method `*`), per deployment, reviewer and
bucket, so that the figures without a flow or method filter read one row set per deployment instead of
one per (deployment, flow, method). They are summed here from the existing rows in SQL (`INSERT …
SELECT … GROUP BY`, SQLite and PostgreSQL alike), so an upgraded install's figures stay right without
`analytics_rebuild`; a rebuild writes the same rows (`Deltas`, hitl.services.rollups).

`*` is refused as a flow or method name from now on; a request that already had it is renamed `(*)`
(with its rollup rows) so that it cannot be taken for the rows of every flow."""

from typing import Any

from django.db import migrations

ALL = "*"
RENAMED = "(*)"
COUNTS = ("created", "responded", "auto_responded", "timed_out", "cancelled", "sla_total", "sla_met", "response_seconds")
# child model → (its key columns after rollup_id, how each value column merges)
CHILDREN = {
    "RollupTime": (("bucket",), {"n": "SUM", "low": "MIN", "high": "MAX"}),
    "RollupAnswer": (("human", "outcome", "source"), {"n": "SUM"}),
    "RollupApproval": (("approver",), {"n": "SUM", "microseconds": "SUM"}),
}


def fill_marginals(apps: Any, schema_editor: Any) -> None:
    Rollup, HITLRequest = apps.get_model("hitl", "Rollup"), apps.get_model("hitl", "HITLRequest")
    rollup = Rollup._meta.db_table
    execute = schema_editor.execute
    for column in ("flow_name", "method_name"):
        for table in (HITLRequest._meta.db_table, rollup):
            execute(f"UPDATE {table} SET {column} = %s WHERE {column} = %s", [RENAMED, ALL])
    sums = ", ".join(f"SUM({c})" for c in COUNTS)
    execute(
        f"INSERT INTO {rollup} (grain, day, deployment_id, flow_name, method_name, reviewer, {', '.join(COUNTS)}) "
        f"SELECT grain, day, deployment_id, %s, %s, reviewer, {sums} FROM {rollup} "
        "WHERE flow_name <> %s GROUP BY grain, day, deployment_id, reviewer",
        [ALL, ALL, ALL],
    )
    for name, (keys, merges) in CHILDREN.items():
        table = apps.get_model("hitl", name)._meta.db_table
        keyed = ", ".join(f"c.{k}" for k in keys)
        merged = ", ".join(f"{how}(c.{column})" for column, how in merges.items())
        execute(
            f"INSERT INTO {table} (rollup_id, {', '.join(keys)}, {', '.join(merges)}) "
            f"SELECT m.id, {keyed}, {merged} FROM {table} c "
            f"JOIN {rollup} r ON r.id = c.rollup_id "
            f"JOIN {rollup} m ON m.grain = r.grain AND m.day = r.day AND m.deployment_id = r.deployment_id "
            "AND m.reviewer = r.reviewer AND m.flow_name = %s AND m.method_name = %s "
            f"WHERE r.flow_name <> %s GROUP BY m.id, {keyed}",
            [ALL, ALL, ALL],
        )


class Migration(migrations.Migration):
    dependencies = [
        ("hitl", "0021_merge_0020_notification_outbox_0020_rollup_months"),
    ]

    operations = [
        migrations.RunPython(fill_marginals, migrations.RunPython.noop),
    ]
