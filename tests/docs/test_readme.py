"""The README is a promise: its command table, its API paths and its curl examples are read from the
README itself and tried against the product (issue 13: "make drift impossible"). Nothing here copies an
example; a changed README is tested as it stands."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command, get_commands, load_command_class

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DEMO_BASE = "http://127.0.0.1:8000"


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


# --- the command table (SPEC §11) ------------------------------------------------------------------


@dataclass
class CommandRow:
    usage: str  # as written, e.g. "manage.py add_webhook --deployment ID --url URL [--name N]"
    does: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def words(self) -> list[str]:
        return self.usage.replace("\\|", "|").split()

    @property
    def name(self) -> str:
        return self.words[self.words.index("manage.py") + 1]

    def groups(self) -> tuple[list[str], list[list[str]]]:
        """The required words after the name, and each optional [...] group's words."""
        text = self.usage.replace("\\|", "|").split("manage.py", 1)[1].split(None, 1)
        rest = text[1] if len(text) > 1 else ""
        optional = [group.split() for group in re.findall(r"\[([^\[\]]*(?:\[[^\]]*\][^\[\]]*)*)\]", rest)]
        required = re.sub(r"\[([^\[\]]*(?:\[[^\]]*\][^\[\]]*)*)\]", " ", rest).split()
        return [w for w in required if not w.startswith("<")], optional

    def flags(self) -> list[str]:
        return sorted({w.strip("[]") for w in self.words if w.strip("[]").startswith("--")})


def command_rows() -> list[CommandRow]:
    rows = []
    for line in section("Management commands").splitlines():
        match = re.match(r"^\| `([^`]+)` \| (.+) \|$", line)
        if not match or "manage.py" not in match.group(1):
            continue
        usage = match.group(1)
        env = dict(re.findall(r"(\w+)=(\S+) (?=.*manage\.py)", usage.split("manage.py")[0] + " manage.py"))
        rows.append(CommandRow(usage=usage, does=match.group(2), env=env))
    return rows


# What a script reads from the last line, by what the table says the command prints.
LAST_LINE = [
    (r"prints the new deployment's id|prints the rule id", r"^\d+$"),
    (r"prints the key", r"^hitl_\S+$"),
    (r"signing secret alone on the last line", r"^whsec_\S+$"),
]


class Values:
    """A value for each placeholder the table uses, made in the test database."""

    def __init__(self, world: Any, tmp: Path) -> None:
        self.world = world
        self.tmp = tmp
        export = tmp / "export.jsonl"
        call_command("audit_export", "--format", "jsonl", "--output", str(export), stdout=io.StringIO())
        last = [json.loads(line) for line in export.read_text().splitlines() if line.strip()][-1]
        request_id = world.create()["id"]
        checkpoint = tmp / "checkpoint.json"
        call_command("audit_checkpoint", "--output", str(checkpoint), stdout=io.StringIO())
        from django.conf import settings

        from audit.lib.keys import public_key_of

        self.by_flag = {
            "--deployment": str(world.deployment.pk),
            "--name": "Docs check",
            "--creator-email": "lead@example.com",
            "--organization": "Docs Org",
            "--flow": "content_approval",
            "--method-pattern": "approve_*",
            "--flow-pattern": "*",
            "--assign-to-email": "cfo@example.com",
            "--assign-from-input": "account.owner.email",
            "--condition": "amount >= 10000",
            "--priority": "5",
            "--url": "https://hooks.example.test/hitl",
            "--event": "new_request",
            "--max-retries": "3",
            "--file": str(export),
            "--expect-last-hash": last["hash"],
            "--format": "jsonl",
            "--output": str(tmp / "out.jsonl"),
            "--since": "2026-01-01",
            "--until": "2099-01-01",
            "--event-type": "request.created",
            "--request": str(request_id),
            "--target-type": "hitlrequest",
            "--target-id": str(request_id),  # ids are not 1 on PostgreSQL, whose sequences go on
            "--actor": "system",
            "--source": "api",
            "--after-id": "0",
            "--requests": "5",
            "--deployments": "1",
            "--reviewers": "2",
            "--days": "3",
            "--bot-token": "xoxb-1234567890-docs-check-token",
            "--signing-secret": "0123456789abcdef0123456789abcdef",
            "--channel": "C0123456789",
            "--checkpoint": str(checkpoint),
            "--public-key": public_key_of(settings.HITL_AUDIT_SIGNING_KEY),
            "--batch-size": "100",
            "--limit": "50",
        }

    def args(self, words: list[str]) -> list[str]:
        out: list[str] = []
        for i, word in enumerate(words):
            if word in ("...", "<", "message.eml") or (word.startswith('"') or word.endswith('"')):
                continue
            if word.startswith("--"):
                out.append(word)
                nxt = words[i + 1] if i + 1 < len(words) else ""
                takes_value = nxt and not nxt.startswith("--") and nxt not in ("...",)
                if takes_value:
                    out.append(self.by_flag[word])
        return out


@pytest.fixture
def values(world: Any, tmp_path: Path) -> Values:
    return Values(world, tmp_path)


def run_command(row: CommandRow, args: list[str]) -> str:
    out = io.StringIO()
    raw = b"From: someone@example.com\nTo: nobody@example.com\nSubject: hello\n\nhi\n"
    stdin = io.TextIOWrapper(io.BytesIO(raw))
    if row.name == "process_inbound_email":
        old = sys.stdin
        sys.stdin = stdin
        try:
            call_command(row.name, *args, stdout=out, stderr=io.StringIO())
        finally:
            sys.stdin = old
    else:
        call_command(row.name, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


class TestCommandTable:
    def test_it_finds_the_table(self) -> None:
        names = {row.name for row in command_rows()}
        assert {"create_deployment", "create_api_key", "add_routing_rule", "add_webhook", "hitl_sweep"} <= names
        assert {"process_inbound_email", "audit_verify", "audit_export"} <= names

    @pytest.mark.parametrize("row", [r for r in command_rows() if not r.env], ids=lambda r: r.name)
    def test_it_documents_only_flags_the_command_has(self, row: CommandRow) -> None:
        assert row.name in get_commands(), f"{row.name} is not a management command"
        parser = load_command_class(get_commands()[row.name], row.name).create_parser("manage.py", row.name)
        known = {option for action in parser._actions for option in action.option_strings}
        assert [flag for flag in row.flags() if flag not in known] == []

    @pytest.mark.parametrize("row", [r for r in command_rows() if not r.env], ids=lambda r: r.name)
    def test_it_runs_every_flag_and_prints_what_it_made_last(self, row: CommandRow, values: Values) -> None:
        required, optional = row.groups()
        runs = [values.args(required)] + [values.args(required + group) for group in optional]
        for number, args in enumerate(runs):
            if "--name" in args:  # names are unique per deployment or organization: one per run
                args[args.index("--name") + 1] += f" {number}"
            output = run_command(row, args)
            lines = [line for line in output.splitlines() if line.strip()]
            assert lines, f"{row.name} {args} printed nothing"
            for does, pattern in LAST_LINE:
                if re.search(does, row.does):
                    assert re.match(pattern, lines[-1].strip()), f"{row.name} {args}: last line {lines[-1]!r}"

    @pytest.mark.parametrize("row", [r for r in command_rows() if r.env], ids=lambda r: r.name)
    def test_the_bench_only_commands_run_under_their_settings(self, row: CommandRow, tmp_path: Path) -> None:
        """bench_seed exists only under the bench settings: run it as the table says, on a scratch SQLite."""
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL"))},
            **row.env,
            "DEBUG": "1",
            "DATABASE_URL": f"sqlite:///{tmp_path}/bench.sqlite3",
        }
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=ROOT, capture_output=True)
        values = {"--requests": "5", "--deployments": "1", "--reviewers": "2", "--days": "3"}
        args = [part for flag in row.flags() for part in (flag, values[flag])]
        done = subprocess.run([*manage, row.name, *args], env=env, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1].strip()


# --- API paths against the OpenAPI schema --------------------------------------------------------

API_PATH = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/api/v1/[^`?\s]*)")


def documented_paths() -> list[tuple[str, str]]:
    found = set()
    for method, path in API_PATH.findall(README):
        found.add((method, path))
    for path in re.findall(r"http://127\.0\.0\.1:8000(/api/v1/[^\s\"'?]*)", README):
        found.add(("ANY", path))
    return sorted(found)


def schema_pattern(path: str) -> re.Pattern[str]:
    """A documented path (`/api/v1/requests/{id}/`, `…/<id>/…`, `…/42/…`) as a pattern over schema paths."""
    parts = []
    for part in path.strip("/").split("/"):
        if re.fullmatch(r"\{\w+\}|<\w+>|\d+|…", part):
            parts.append(r"\{\w+\}")
        else:
            parts.append(re.escape(part))
    return re.compile("^/" + "/".join(parts) + "/?$")


class TestApiPaths:
    def test_it_finds_documented_paths(self) -> None:
        assert len(documented_paths()) >= 8

    def test_every_documented_path_and_method_is_in_the_schema(self, client: Any) -> None:
        schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
        missing = []
        for method, path in documented_paths():
            pattern = schema_pattern(path)
            operations = [ops for p, ops in schema["paths"].items() if pattern.match(p)]
            if not operations or (method != "ANY" and not any(method.lower() in ops for ops in operations)):
                missing.append(f"{method} {path}")
        assert missing == []


# --- the curl examples, run against a live server -----------------------------------------------


@dataclass
class Step:
    command: str
    expect: str = ""  # the "# → …" comment that follows it, if any


def bash_blocks() -> Iterator[str]:
    for match in re.finditer(r"^ *```bash\n(.*?)^ *```", README, re.M | re.S):
        yield match.group(1)


def complete(command: str) -> bool:
    """A shell command is complete when it does not end in a continuation and its quotes close."""
    if command.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(command)
    except ValueError:
        return False
    return True


def steps(block: str) -> list[Step]:
    """The commands a reader would type (curl, manage.py, KEY=$(…)), each with its "# → …" comment."""
    found: list[Step] = []
    pending: list[str] = []
    for raw in block.splitlines():
        line = raw.strip()
        if pending:
            pending.append(raw)
        elif line.startswith("# → ") and found:
            found[-1].expect = line[4:]
            continue
        elif line.startswith("#  ") and found and found[-1].expect:
            found[-1].expect += " " + line.lstrip("# ")
            continue
        elif line.startswith(("curl ", ".venv/bin/python manage.py ", "KEY=$(")):
            pending = [raw]
        else:
            continue
        text = "\n".join(pending)
        if complete(text):
            # A trailing "# comment" is the README talking, not the command.
            command = re.sub(r"\s+#\s[^'\"]*$", "", text.replace("\\\n", " ")).strip()
            found.append(Step(command))
            pending = []
    return found


def curl_blocks() -> list[list[Step]]:
    return [steps(block) for block in bash_blocks() if "curl " in block]


def all_values(obj: Any, key: str) -> list[Any]:
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                found.append(v)
            found += all_values(v, key)
    elif isinstance(obj, list):
        for item in obj:
            found += all_values(item, key)
    return found


class Session:
    """One reader following the README: the demo data, a key, and what earlier answers returned."""

    def __init__(self, base: str, key: str, cwd: Path) -> None:
        self.base = base
        self.cwd = cwd
        self.vars: dict[str, str] = {"KEY": key}

    def fill(self, command: str) -> str:
        command = command.replace(DEMO_BASE, self.base)
        for name in re.findall(r"<(\w+)>", command):
            assert name in self.vars, f"nothing earlier in the example gave <{name}>: {command}"
            command = command.replace(f"<{name}>", self.vars[name])
        return command

    def manage(self, command: str) -> str:
        args = shlex.split(command)[2:]  # after ".venv/bin/python manage.py"
        out = io.StringIO()
        call_command(*args, stdout=out, stderr=io.StringIO())
        last = [line for line in out.getvalue().splitlines() if line.strip()][-1].strip()
        if re.fullmatch(r"\d+", last):
            self.vars["id"] = last
        return last

    def run(self, step: Step) -> None:
        command = self.fill(step.command)
        key_from = re.fullmatch(r"KEY=\$\((.+?) \| tail -1\)", command)
        if key_from:
            self.vars["KEY"] = self.manage(key_from.group(1))
            return
        if command.startswith(".venv/bin/python manage.py"):
            self.manage(command)
            return
        done = subprocess.run(
            ["bash", "-c", command + " -w '\\n%{http_code}'"],
            env={"PATH": os.environ["PATH"], "KEY": self.vars["KEY"]},
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{command}: {done.stderr}"
        body, _, status = done.stdout.rpartition("\n")
        self.check(step, command, int(status), body)

    def check(self, step: Step, command: str, status: int, body: str) -> None:
        expected = re.match(r"(\d{3})\b", step.expect)
        if expected:
            assert status == int(expected.group(1)), f"{command}: {status} {body[:500]}"
        else:
            assert 200 <= status < 300, f"{command}: {status} {body[:500]}"
        data = json.loads(body) if body.strip().startswith(("{", "[")) else None
        if isinstance(data, dict):
            for name, value in data.items():
                if isinstance(value, str | int) and not isinstance(value, bool):
                    self.vars[name] = str(value)
        if data is None:
            return
        for name in re.findall(r'"(\w+)":', step.expect):
            assert all_values(data, name), f"{command}: the README shows {name!r}, the answer has none"
        for name, value in re.findall(r'"(\w+)": "([^"…]+)"', step.expect):
            assert value in [str(v) for v in all_values(data, name)], f"{command}: {name} is not {value!r}"


@pytest.mark.django_db(transaction=True)
class TestCurlExamples:
    def test_it_finds_the_examples(self) -> None:
        assert len(curl_blocks()) >= 3

    @pytest.mark.parametrize("index", range(len(curl_blocks())))
    def test_each_example_does_what_it_says(
        self, index: int, live_server: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """As against `make run` just after each call: work is queued for a worker, not run inline (so a
        kickoff answers while its run is still `running`, as the README shows)."""
        from django_q.brokers import get_broker
        from django_q.conf import Conf

        from accounts.models import Deployment
        from accounts.services import create_api_key

        monkeypatch.setattr(Conf, "SYNC", False)

        settings.HITL_BASE_URL = live_server.url
        call_command("load_demo", stdout=io.StringIO())
        demo = Deployment.objects.order_by("pk").first()
        _, key = create_api_key(demo, name="readme")
        with tempfile.TemporaryDirectory() as cwd:
            session = Session(live_server.url, key, Path(cwd))
            try:
                for step in curl_blocks()[index]:
                    session.run(step)
            finally:
                get_broker().purge_queue()  # nothing queued here is left for a later test's worker
