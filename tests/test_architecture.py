"""The layout's import rules (docs/ARCHITECTURE.md), read from the source: a module imports only from
its own layer or the layers below it. Every import counts, including those inside functions and under
TYPE_CHECKING: a lower layer that needs a higher one's type takes a Protocol instead."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hitl", "flows", "accounts", "audit")

# Lowest first. A module belongs to the first layer whose prefix it starts with (the longest match).
LAYERS: dict[str, float] = {
    "hitl.lib": 0,  # helpers that import no app
    "accounts": 1,  # the ground floor: accounts and audit may use each other, nothing above
    "audit": 1,
    # The requests app's core, itself in order: models, what reads them, channels, writes, entry points.
    "hitl.routing.conditions": 2.0,  # pure (the model validates rules with it)
    "hitl.models": 2.1,
    "hitl.rollup_models": 2.1,  # the analytics rollups (SPEC §19), registered by hitl.models
    "hitl.config_cache": 2.15,  # a deployment's rules and webhooks cached per process, by its version
    "hitl.results": 2.2,
    "hitl.routing": 2.2,
    "hitl.channels": 2.3,
    "hitl.services": 2.4,
    "hitl.inbound": 2.5,
    "hitl.tasks": 2.5,
    "hitl.schedules": 2.5,
    "hitl.checks": 2.5,
    "hitl.middleware": 2.5,
    "hitl.idempotency": 2.5,  # the Idempotency-Key decorator: the requests API and the flows API use it
    "hitl.apps": 2.5,
    "hitl.settings": 2.5,
    "flows": 3,  # server-side flows: build on requests, never the other way round
    "hitl": 4,  # the surfaces: views, api, admin, analytics, templatetags, management, urls, wsgi
}
CLIENT = "hitl.client"  # the client (hitl_client, and its alias hitl.client): imports nothing of ours but itself
CLIENT_DIR = ROOT / "hitl" / "client" / "hitl_client"  # the hitl-client distribution's package


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def layer_of(module: str) -> float | None:
    best = None
    for prefix in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best)):
            best = prefix
    return None if best is None else LAYERS[best]


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for every import of one of our packages; `from hitl import services` is
    `hitl.services`, since that is the module it loads."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module in PACKAGES or node.module == "hitl.lib":
                found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] in PACKAGES]


def sources() -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def violations() -> list[str]:
    found = []
    for path in sources():
        me = module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, other in imported(tree):
            if me == CLIENT or me.startswith(CLIENT + "."):
                if not (other == CLIENT or other.startswith(CLIENT + ".")):
                    found.append(f"{me}:{line} imports {other} (the client imports nothing from the server)")
                continue
            mine, theirs = layer_of(me), layer_of(other)
            if mine is not None and theirs is not None and theirs > mine:
                found.append(f"{me}:{line} (layer {mine}) imports {other} (layer {theirs})")
    return found


class TestLayers:
    def test_it_finds_every_source_module_a_layer(self) -> None:
        unplaced = [module_name(p) for p in sources() if layer_of(module_name(p)) is None]
        assert unplaced == []

    def test_it_allows_no_import_from_a_higher_layer(self) -> None:
        assert violations() == []

    def test_it_keeps_hitl_lib_free_of_every_app(self) -> None:
        lib = [p for p in sources() if module_name(p).startswith("hitl.lib")]
        assert lib, "hitl/lib has modules"
        bad = [
            f"{module_name(p)}:{line} imports {other}"
            for p in lib
            for line, other in imported(ast.parse(p.read_text()))
            if not other.startswith("hitl.lib")
        ]
        assert bad == []

    @pytest.mark.parametrize(
        "source, expected",
        [
            ("from hitl.models import HITLRequest\n", ["x.py:1 (layer 0) imports hitl.models (layer 2.1)"]),
            ("from hitl import views\n", ["x.py:1 (layer 0) imports hitl.views (layer 4)"]),
            ("def f():\n    from flows.models import FlowRun\n", ["x.py:2 (layer 0) imports flows.models (layer 3)"]),
            ("from hitl.lib import crypto\nimport django\n", []),
        ],
    )
    def test_it_sees_every_kind_of_import(self, source: str, expected: list[str]) -> None:
        """The checker itself: module-level, `from package import module` and function-level imports."""
        found = [
            f"x.py:{line} (layer 0) imports {other} (layer {layer_of(other)})"
            for line, other in imported(ast.parse(source))
            if (layer_of(other) or 0) > 0
        ]
        assert found == expected


def client_imports() -> list[str]:
    """Every absolute import in the hitl-client distribution that is neither the standard library nor
    its one dependency (httpx); CrewAI only in hitl_client.crewai (the `crewai` extra)."""
    import sys

    found = []
    for path in sorted(CLIENT_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("httpx", "hitl_client"):
                    continue
                if top == "crewai" and path.name == "crewai.py":
                    continue
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    return found


class TestClientDistribution:
    def test_it_imports_only_the_standard_library_and_httpx(self) -> None:
        assert list(CLIENT_DIR.glob("*.py")), "the client's package is in hitl/client/hitl_client"
        assert client_imports() == []

    def test_its_alias_is_the_same_client(self) -> None:
        """The server's `hitl.client` names are hitl_client's (the checkout has it on the path)."""
        import hitl.client
        import hitl.client.crewai
        import hitl_client
        import hitl_client.crewai

        assert hitl.client.HitlClient is hitl_client.HitlClient
        assert hitl.client.crewai.HitlResumer is hitl_client.crewai.HitlResumer
        assert set(hitl.client.__all__) == set(hitl_client.__all__)

    def test_its_version_is_the_servers(self) -> None:
        import hitl
        import hitl_client

        assert hitl_client.__version__ == hitl.__version__


class TestTaskPaths:
    """Work queued by old code runs on new code: every django-q2 task and schedule path, and every
    channel path a task receives, still imports."""

    @pytest.mark.parametrize(
        "path",
        [
            "hitl.tasks.notify_channel",
            "hitl.tasks.deliver_notification",
            "hitl.tasks.send_reply_confirmation",
            "hitl.tasks.send_reply_error",
            "hitl.tasks.sweep",
            "hitl.tasks.deliver_webhook",
            "hitl.tasks.process_slack_interaction",
            "flows.tasks.run_step",
            "flows.tasks.recover_stalled_runs",
            "flows.tasks.deliver_run_webhook",
            "audit.tasks.seal",
            "audit.tasks.checkpoint",
            "hitl.channels.email.EmailChannel",
            "hitl.channels.replies.ReplyChannel",
            "hitl.channels.webhook.WebhookChannel",
            "hitl.channels.telegram.TelegramChannel",
            "hitl.channels.slack.SlackChannel",
            "flows.channel.FlowChannel",
            "hitl.lib.crypto.EncryptedTextField",
            "hitl.lib.dev_mailbox.DevMailboxBackend",
        ],
    )
    def test_it_still_imports(self, path: str) -> None:
        from django.utils.module_loading import import_string

        assert callable(import_string(path))

    def test_every_channel_is_listed_and_every_schedule_resolves(self) -> None:
        from django.utils.module_loading import import_string

        from hitl.channels import CHANNELS
        from hitl.schedules import SCHEDULES

        assert "flows.channel.FlowChannel" in CHANNELS  # registered by flows' AppConfig.ready
        for spec in SCHEDULES.values():
            assert callable(import_string(str(spec["func"])))
