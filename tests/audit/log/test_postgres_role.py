"""The documented PostgreSQL set-up (docs/postgres-app-role.sql): the app runs as a role that owns nothing
and is no superuser, so it cannot switch the audit triggers off; and the app works as that role."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection

BASE_DIR = Path(__file__).resolve().parents[3]
OWNER, APP, DATABASE = "hitl_a_owner", "hitl_a_app", "hitl_a_roles"
AS_THE_APP = """
import django
django.setup()
from django.test import Client
from accounts.services import create_api_key, create_deployment
from audit.services import make_checkpoint, seal_events, verify_chain, verify_checkpoint

deployment = create_deployment(name="Role test", creator_email="creator@example.com")
_, key = create_api_key(deployment, name="ci")
response = Client().post(
    "/api/v1/requests/",
    {"message": "Please review", "emit_options": ["approved", "rejected"]},
    content_type="application/json",
    headers={"Authorization": f"Bearer {key}"},
)
assert response.status_code == 201, response.content
assert seal_events() > 0
checked, broken = verify_chain()
assert broken is None and checked > 0, broken
assert verify_checkpoint(make_checkpoint()) == []
print("app ok", checked)
"""


def superuser() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], autocommit=True)


@pytest.fixture
def roles_database() -> Iterator[str]:
    db = connection.settings_dict
    with superuser() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        for role in (OWNER, APP):
            conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {OWNER} LOGIN")
        conn.execute(f"CREATE ROLE {APP} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS")
        conn.execute(f"CREATE DATABASE {DATABASE} OWNER {OWNER}")
    url = f"postgres://{{}}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{DATABASE}"
    yield url
    with superuser() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        for role in (APP, OWNER):
            conn.execute(f"DROP ROLE IF EXISTS {role}")


def run(url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": url, "ALLOWED_HOSTS": "testserver"}
    env.pop("REDIS_URL", None)
    return subprocess.run(  # noqa: S603 - our own code
        [sys.executable, *argv], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL roles")
class TestAppRole:
    def test_it_runs_the_app_as_a_role_that_cannot_disable_the_triggers(self, roles_database: str) -> None:
        owner_url, app_url = roles_database.format(OWNER), roles_database.format(APP)
        migrated = run(owner_url, "manage.py", "migrate", "--noinput")
        assert migrated.returncode == 0, migrated.stderr
        grants = (BASE_DIR / "docs" / "postgres-app-role.sql").read_text().replace("hitl_app", APP)
        with psycopg.connect(owner_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            conn.execute(grants)
        app = run(app_url, "-c", AS_THE_APP)
        assert app.returncode == 0, app.stderr
        assert "app ok" in app.stdout

        with psycopg.connect(app_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
            victim = conn.execute("SELECT id FROM audit_auditevent ORDER BY seq LIMIT 1").fetchone()[0]
            attacks = [
                ("SET session_replication_role = replica", "permission denied"),
                ("ALTER TABLE audit_auditevent DISABLE TRIGGER ALL", "must be owner"),
                ("DROP TRIGGER audit_seal_only ON audit_auditevent", "must be owner"),
                (f"UPDATE audit_auditevent SET actor = 'mallory' WHERE id = {victim}", "permission denied"),
                (f"UPDATE audit_auditevent SET hash = repeat('f', 64) WHERE id = {victim}", "append-only"),
                (f"DELETE FROM audit_auditevent WHERE id = {victim}", "permission denied"),
                ("TRUNCATE audit_auditevent", "permission denied"),
            ]
            for statement, refusal in attacks:
                with pytest.raises(psycopg.Error, match=refusal):
                    conn.execute(statement)
        verified = run(app_url, "manage.py", "audit_verify")
        assert verified.returncode == 0 and "audit chain intact" in verified.stdout, verified.stderr
