"""Audit export (SPEC §10): streamed CSV / JSON Lines from the API, the admin and `audit_export`, each
export audited, and exported files that a third party can verify — altered lines detected."""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse

from audit.lib import verify_export
from audit.lib.export import COLUMNS
from audit.lib.keys import hmac_keys
from audit.models import GENESIS_HASH, AuditEvent, EventType
from audit.services import record_event, seal_events, verify_chain
from tests.support.base import World

pytestmark = pytest.mark.django_db


def body(response: Any) -> str:
    assert isinstance(response, StreamingHttpResponse), response
    return b"".join(response.streaming_content).decode()


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line]


@pytest.fixture
def ops(world: World) -> Any:
    return get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")


@pytest.fixture
def history(world: World) -> dict[str, Any]:
    """Requests in both deployments, answered, plus an event no deployment owns."""
    mine = world.create(assign_to="responder@example.com")
    world.client_for("key").post(f"/api/v1/requests/{mine['id']}/respond/", {"outcome": "approved"}, format="json")
    theirs = world.create("other_key")
    record_event(EventType.PERMISSION_CHANGED, actor='=HYPERLINK("http://x")', data={"note": 'ünïcode, "quoted"'})
    return {"mine": mine["id"], "theirs": theirs["id"]}


def export(world: World, who: Any, query: str = "") -> Any:
    client = world.client_for(who) if isinstance(who, str) else world.client_for("anonymous")
    if not isinstance(who, str):
        client.force_authenticate(who)
    return client.get(f"/api/v1/audit/{query}")


class TestAuditExportApi:
    def test_it_streams_every_event_as_json_lines_with_the_chain(self, world: World, history: dict, ops: Any) -> None:
        response = export(world, ops)
        # The export sealed every waiting event first; its own event waits for the next seal.
        sealed = list(AuditEvent.objects.filter(seq__isnull=False).order_by("seq").values_list("id", "hash"))
        assert response.status_code == 200
        assert response["Content-Type"].startswith("application/jsonl")
        assert 'attachment; filename="audit-' in response["Content-Disposition"]
        records = jsonl(body(response))
        assert [(r["id"], r["hash"]) for r in records] == sealed
        assert [r["seq"] for r in records] == list(range(1, len(sealed) + 1))
        assert list(records[0]) == list(COLUMNS)
        assert records[0]["prev_hash"] == GENESIS_HASH

    def test_each_export_is_audited_and_not_part_of_its_own_file(self, world: World, history: dict, ops: Any) -> None:
        response = export(world, ops, "?event_type=response.submitted,request.created")
        records = jsonl(body(response))
        event = AuditEvent.objects.get(pk=response["X-Audit-Export-Event"])
        assert event.event_type == EventType.AUDIT_EXPORTED and event.actor == "ops@example.com"
        assert event.source == "api"
        assert event.data["format"] == "jsonl"
        assert event.data["filters"] == {"event_types": ["response.submitted", "request.created"]}
        assert event.data["count"] == len(records) == 3
        assert event.data["last_hash"] == records[-1]["hash"] == response["X-Audit-Export-Last-Hash"]
        assert event.pk not in {r["id"] for r in records}
        assert verify_chain()[1] is None

    def test_csv_carries_the_same_records(self, world: World, history: dict, ops: Any) -> None:
        as_jsonl = jsonl(body(export(world, ops)))
        response = export(world, ops, "?format=csv")
        assert response["Content-Type"].startswith("text/csv")
        as_csv = list(verify_export.read_records(io.StringIO(body(response)), "csv"))
        # The second export also saw the first one's audit event.
        assert as_csv[: len(as_jsonl)] == as_jsonl
        assert as_csv[-1]["event_type"] == EventType.AUDIT_EXPORTED

    def test_formula_like_cells_are_escaped_in_csv(self, world: World, history: dict, ops: Any) -> None:
        text = body(export(world, ops, "?format=csv&event_type=permission.changed"))
        row = next(csv.DictReader(io.StringIO(text)))
        assert row["actor"] == '\'=HYPERLINK("http://x")'

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("?event_type=response.submitted", {EventType.RESPONSE_SUBMITTED}),
            ("?source=api&event_type=request.created", {EventType.REQUEST_CREATED}),
            ("?actor=SYSTEM&event_type=request.assigned", {EventType.REQUEST_ASSIGNED}),
        ],
    )
    def test_filters(self, world: World, history: dict, ops: Any, query: str, expected: set[str]) -> None:
        records = jsonl(body(export(world, ops, query)))
        assert records and {r["event_type"] for r in records} == expected

    def test_filter_by_request_deployment_time_and_id(self, world: World, history: dict, ops: Any) -> None:
        about = jsonl(body(export(world, ops, f"?request={history['mine']}")))
        assert {r["target_id"] for r in about} == {history["mine"]}
        assert {r["event_type"] for r in about} >= {"request.created", "response.submitted"}
        other = jsonl(body(export(world, ops, f"?deployment={world.other.pk}")))
        assert other and {r["deployment_id"] for r in other} == {world.other.pk}
        assert jsonl(body(export(world, ops, "?until=2000-01-01"))) == []
        everything = jsonl(body(export(world, ops, "?since=2000-01-01T00:00:00Z")))
        tail = jsonl(body(export(world, ops, f"?after_id={everything[-3]['id']}")))
        assert [r["id"] for r in tail][:2] == [r["id"] for r in everything[-2:]]

    def test_bad_filters_are_400(self, world: World, ops: Any) -> None:
        for query in ("?format=xml", "?event_type=nope", "?since=yesterday", "?request=not-a-uuid"):
            response = export(world, ops, query)
            assert response.status_code == 400, query
            assert response.json()["code"] == "invalid"


class TestAuditExportPermissions:
    def test_a_manager_gets_only_their_deployments_events(self, world: World, history: dict) -> None:
        records = jsonl(body(export(world, "manager")))
        assert records and {r["deployment_id"] for r in records} == {world.deployment.pk}

    @pytest.mark.parametrize("who", ["key", "read_key"])
    def test_an_api_key_gets_its_deployments_events(self, world: World, history: dict, who: str) -> None:
        records = jsonl(body(export(world, who)))
        assert records and {r["deployment_id"] for r in records} == {world.deployment.pk}
        exported = AuditEvent.objects.filter(event_type=EventType.AUDIT_EXPORTED).get()
        assert exported.deployment_id == world.deployment.pk and exported.actor.startswith("api-key:")

    @pytest.mark.parametrize("who", ["manager", "other_key", "stranger"])
    def test_another_deployment_is_404(self, world: World, history: dict, who: str) -> None:
        response = export(world, who, f"?deployment={world.other.pk if who != 'other_key' else world.deployment.pk}")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"

    def test_seeing_without_managing_is_403(self, world: World, history: dict) -> None:
        assert export(world, "responder", f"?deployment={world.deployment.pk}").status_code == 403
        for who in ("responder", "stranger"):
            response = export(world, who)
            assert response.status_code == 403
            assert response.json()["code"] == "permission_denied"
        assert not AuditEvent.objects.filter(event_type=EventType.AUDIT_EXPORTED).exists()

    def test_anonymous_is_refused(self, world: World) -> None:
        assert export(world, "anonymous").status_code in (401, 403)

    def test_the_response_streams_in_keyset_batches(
        self, world: World, history: dict, ops: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from audit.lib import export as export_module

        monkeypatch.setattr(export_module, "BATCH_SIZE", 3)
        total = AuditEvent.objects.count()
        chunks = list(export(world, ops).streaming_content)
        assert len(chunks) == -(-total // 3)
        assert sum(chunk.count(b"\n") for chunk in chunks) == total


class TestVerifyingAnExport:
    def write(self, tmp_path: Path, name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    @pytest.mark.parametrize("fmt", ["jsonl", "csv"])
    def test_an_exported_chain_verifies(
        self, world: World, history: dict, ops: Any, tmp_path: Path, fmt: str, capsys: Any
    ) -> None:
        response = export(world, ops, f"?format={fmt}")
        path = self.write(tmp_path, f"audit.{fmt}", body(response))
        last_hash = response["X-Audit-Export-Last-Hash"]
        call_command("audit_verify", file=path, expect_last_hash=last_hash)
        assert "export intact" in capsys.readouterr().out
        # The standalone verifier (standard library only) agrees.
        assert verify_export.main([path, "--expect-last-hash", last_hash]) == 0
        assert "OK: " in capsys.readouterr().out

    @pytest.mark.parametrize("fmt", ["jsonl", "csv"])
    def test_an_altered_line_is_detected(self, world: World, history: dict, ops: Any, tmp_path: Path, fmt: str) -> None:
        lines = body(export(world, ops, f"?format={fmt}")).splitlines(keepends=True)
        victim = 3 if fmt == "jsonl" else 4  # CSV has a header line
        assert "system" in lines[victim]
        lines[victim] = lines[victim].replace("system", "mallory", 1)
        victim_id = (json.loads(lines[victim]) if fmt == "jsonl" else {"id": lines[victim].split(",")[0]})["id"]
        path = self.write(tmp_path, f"audit.{fmt}", "".join(lines))
        with pytest.raises(CommandError, match=f"event {victim_id}: hash does not match"):
            call_command("audit_verify", file=path)

    def test_a_removed_line_is_detected(self, world: World, history: dict, ops: Any, tmp_path: Path) -> None:
        records = jsonl(body(export(world, ops)))
        del records[2]
        path = self.write(tmp_path, "audit.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        with pytest.raises(CommandError, match=f"event {records[2]['id']}: prev_hash is not the hash"):
            call_command("audit_verify", file=path, complete=True)
        # Without --complete a gap is what any filtered export has; the server's count catches it.
        with pytest.raises(CommandError, match=f"the file has {len(records)} events, expected {len(records) + 1}"):
            call_command("audit_verify", file=path, expect_count=len(records) + 1)

    def test_a_rehashed_line_breaks_the_next_link_and_the_anchor_catches_the_last(
        self, world: World, history: dict, ops: Any, tmp_path: Path
    ) -> None:
        records = jsonl(body(export(world, ops)))
        anchor = records[-1]["hash"]
        for index in (1, len(records) - 1):
            forged = [dict(r) for r in records]
            forged[index]["actor"] = "mallory"
            forged[index]["hash"] = verify_export.event_hash(forged[index])
            result = verify_export.verify_records(forged, complete=True, expect_last_hash=anchor)
            assert not result.ok
            if index == 1:
                assert "prev_hash is not the hash" in result.problems[0]
            else:
                assert result.problems == [f"the file ends at hash {forged[-1]['hash']}, expected {anchor}"]

    def test_a_filtered_export_verifies_event_by_event_and_names_its_gaps(
        self, world: World, history: dict, tmp_path: Path, capsys: Any
    ) -> None:
        response = export(world, "manager")
        path = self.write(tmp_path, "mine.jsonl", body(response))
        call_command("audit_verify", file=path, expect_last_hash=response["X-Audit-Export-Last-Hash"])
        out = capsys.readouterr().out
        assert "export intact" in out and " gaps (events not in this file" in out
        call_command("audit_verify", file=path, partial=True)  # the old flag still works
        with pytest.raises(CommandError, match="prev_hash is not the hash"):
            call_command("audit_verify", file=path, complete=True)
        records = jsonl(Path(path).read_text())
        records[1]["actor"] = "mallory@example.com"
        Path(path).write_text("".join(json.dumps(r) + "\n" for r in records))
        with pytest.raises(CommandError, match="hash does not match its contents"):
            call_command("audit_verify", file=path)

    def test_the_verifier_matches_the_servers_hash(self, world: World, history: dict) -> None:
        seal_events()
        key = hmac_keys()[0]
        for event in AuditEvent.objects.all():
            record = {**event.sealed_fields(), "data": event.data}
            assert verify_export.event_hash(record, key) == event.hash == event.compute_hash()
            assert verify_export.event_hash(record) is None  # without the key: links only


def readme_verify_commands() -> list[str]:
    """The commands of the README's "Verifying a file" block, as a reader would copy them."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    section = readme.split("**Verifying a file.**", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


class TestVerifyingAnApiKeysExport:
    """Issue 13: an API key's export holds only its deployment's events, so the chain has gaps; the
    README's own commands must verify it."""

    @pytest.mark.parametrize("fmt", ["jsonl", "csv"])
    def test_the_readme_commands_verify_a_deployment_keys_export(
        self, world: World, history: dict, tmp_path: Path, fmt: str
    ) -> None:
        response = export(world, "key", f"?format={fmt}")
        assert response.status_code == 200
        text = body(response)
        if fmt == "jsonl":
            assert {r["deployment_id"] for r in jsonl(text)} == {world.deployment.pk}
        (tmp_path / f"audit.{fmt}").write_text(text, encoding="utf-8")
        commands = readme_verify_commands()
        assert any("manage.py audit_verify --file" in c for c in commands), commands
        assert any("audit/lib/verify_export.py" in c for c in commands), commands
        repo = Path(__file__).resolve().parents[3]
        for command in commands:
            if "--complete" in command:
                continue  # for a full export; the key's export is not one
            argv = shlex.split(
                command.replace("<X-Audit-Export-Last-Hash>", response["X-Audit-Export-Last-Hash"]).replace(
                    "<X-Audit-Export-Count>", response["X-Audit-Export-Count"]
                )
            )
            argv = [str(tmp_path / f"audit.{fmt}") if a in ("audit.jsonl", "audit.csv") else a for a in argv]
            argv = [sys.executable if a in (".venv/bin/python", "python3") else a for a in argv]
            argv = [str(repo / a) if a in ("manage.py", "audit/lib/verify_export.py") else a for a in argv]
            done = subprocess.run(  # noqa: S603 (our own commands, from our README)
                argv, cwd=tmp_path, env={**os.environ, "DEBUG": "1"}, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            assert "gaps (events not in this file" in done.stdout, done.stdout

    def test_the_readmes_python_check_runs_on_it(self, world: World, history: dict, tmp_path: Path) -> None:
        readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
        snippet = readme.split("The check in a few lines of Python:", 1)[1].split("```python\n", 1)[1].split("```")[0]
        (tmp_path / "audit.jsonl").write_text(body(export(world, "key")), encoding="utf-8")
        done = subprocess.run(  # noqa: S603 (the README's own snippet)
            [sys.executable, "-c", snippet + "\nprint('gaps', gaps)"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert int(done.stdout.split()[-1]) > 0  # an API key's export has gaps, and the check passes

    def test_a_full_export_verifies_with_complete(self, world: World, history: dict, ops: Any, tmp_path: Path) -> None:
        response = export(world, ops)
        path = tmp_path / "audit.jsonl"
        path.write_text(body(response), encoding="utf-8")
        anchors = ["--expect-last-hash", response["X-Audit-Export-Last-Hash"]]
        assert verify_export.main([str(path), "--complete", *anchors]) == 0
        key_export = export(world, "key")
        path.write_text(body(key_export), encoding="utf-8")
        assert verify_export.main([str(path), "--complete"]) == 1


class TestAuditExportCommand:
    def test_it_writes_to_standard_output(self, world: World, history: dict, capsys: Any) -> None:
        out = io.StringIO()
        call_command("audit_export", stdout=out)
        records = jsonl(out.getvalue())
        assert len(records) == AuditEvent.objects.count() - 1
        event = AuditEvent.objects.order_by("-id").first()
        assert event is not None and event.event_type == EventType.AUDIT_EXPORTED and event.source == "cli"
        assert f"recorded as audit event {event.pk}" in capsys.readouterr().err

    def test_it_writes_a_file_and_prints_its_path_last(self, world: World, history: dict, tmp_path: Path) -> None:
        path = tmp_path / "audit.csv"
        out = io.StringIO()
        call_command(
            "audit_export", format="csv", output=str(path), event_type=["request.created"], batch_size=1, stdout=out
        )
        assert out.getvalue().strip().splitlines()[-1] == str(path)
        rows = list(csv.DictReader(path.open(encoding="utf-8")))
        assert len(rows) == 2 and {r["event_type"] for r in rows} == {"request.created"}
        exported = AuditEvent.objects.get(event_type=EventType.AUDIT_EXPORTED)
        assert exported.data["filters"] == {"event_types": ["request.created"]} and exported.data["count"] == 2
        call_command("audit_verify", file=str(path), partial=True, stdout=io.StringIO())

    def test_the_progress_bar_draws_on_a_terminal(self) -> None:
        from audit.management.commands.audit_export import Progress

        stream = io.StringIO()
        progress = Progress(4, stream)
        progress(2)
        progress(4)
        progress.close()
        assert "100%" in stream.getvalue() and "4/4 events" in stream.getvalue()


class TestAdminExport:
    @pytest.mark.parametrize("fmt", ["jsonl", "csv"])
    def test_the_admin_exports_the_filtered_selection(self, world: World, history: dict, ops: Any, fmt: str) -> None:
        client = Client()
        client.force_login(ops)
        url = reverse("admin:audit_auditevent_changelist") + "?event_type__exact=request.created"
        matching = list(AuditEvent.objects.filter(event_type="request.created").values_list("pk", flat=True))
        response = client.post(
            url,
            {"action": f"export_{fmt}", "select_across": "1", "_selected_action": [matching[0]], "index": 0},
        )
        assert response.status_code == 200
        records = list(verify_export.read_records(io.StringIO(body(response)), fmt))
        assert [r["id"] for r in records] == matching
        event = AuditEvent.objects.get(event_type=EventType.AUDIT_EXPORTED)
        assert event.source == "admin" and event.actor == "ops"
        assert event.data["filters"] == {"admin_filters": "event_type__exact=request.created", "all_matching": True}


class TestVerifyingAnExportAgainstACheckpoint:
    """SPEC §18: a full export checked stand-alone (the verifier's one file, a checkpoint, its public key)."""

    def standalone(self, *argv: str, key: str | None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "HITL_AUDIT_KEY"}
        if key:
            env["HITL_AUDIT_KEY"] = key
        script = Path(__file__).resolve().parents[3] / "audit" / "lib" / "verify_export.py"
        return subprocess.run(  # noqa: S603 - the stand-alone verifier, as a third party runs it
            [sys.executable, str(script), *argv], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    def test_it_verifies_a_full_export_stand_alone_against_a_checkpoint(
        self, world: World, history: dict, ops: Any, tmp_path: Path
    ) -> None:
        from django.conf import settings

        from audit.lib.keys import public_key_of

        checkpoint = tmp_path / "checkpoint.json"
        call_command("audit_checkpoint", output=str(checkpoint))
        path = tmp_path / "audit.jsonl"
        path.write_text(body(export(world, ops)), encoding="utf-8")
        public = public_key_of(settings.HITL_AUDIT_SIGNING_KEY)
        anchors = ["--complete", "--checkpoint", str(checkpoint), "--public-key", public]
        done = self.standalone(str(path), *anchors, key=settings.HITL_AUDIT_KEY)
        assert done.returncode == 0, done.stderr
        assert "matches the signed checkpoint" in done.stdout and "NOT recomputed" not in done.stdout
        without_key = self.standalone(str(path), *anchors, key=None)
        assert without_key.returncode == 0 and "keyed hashes NOT recomputed" in without_key.stdout
        call_command("audit_verify", file=str(path), complete=True, checkpoint=[str(checkpoint)])

        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[:-2]), encoding="utf-8")  # the tail cut off
        cut = self.standalone(str(path), *anchors, key=settings.HITL_AUDIT_KEY)
        assert cut.returncode == 1 and "its tail is missing" in cut.stderr
        wrong_key = self.standalone(str(path), *anchors[:-1], public_key_of(generate()), key=settings.HITL_AUDIT_KEY)
        assert wrong_key.returncode == 1 and "not among the trusted public keys" in wrong_key.stderr


def generate() -> str:
    from audit.lib.keys import generate_signing_key

    return generate_signing_key()
