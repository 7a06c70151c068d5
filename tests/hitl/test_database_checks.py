"""hitl.W005 (issue 21): on PostgreSQL, a server without autovacuum is named at `migrate` and `check
--database`: the rollup rows every request updates would keep their dead versions."""

from __future__ import annotations

import pytest
from django.core import checks
from django.db import connection

from hitl.checks import check_autovacuum

pytestmark = pytest.mark.django_db


def test_it_warns_exactly_when_the_postgresql_server_runs_without_autovacuum() -> None:
    found = check_autovacuum(databases=["default"])
    if connection.vendor != "postgresql":
        assert found == []  # SQLite has no autovacuum of that kind and nothing to warn of
        return
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        off = cursor.fetchone()[0] == "off"
    assert [w.id for w in found] == (["hitl.W005"] if off else [])
    if off:
        assert found[0].level == checks.WARNING and "VACUUM" in (found[0].hint or "")
        assert found[0] in checks.run_checks(tags=[checks.Tags.database], databases=["default"])
    assert check_autovacuum() == []  # a check without databases reads none
