"""The production end-to-end step of .ci/run: the server as an operator installs and runs it.

Builds the server's and the client's wheels from a copy of the checkout, installs each into a fresh
virtualenv in a temporary directory (nothing of the checkout on any path), and runs `hitl migrate`,
`hitl serve` (gunicorn, DEBUG off) and two `hitl worker`s on PostgreSQL + Redis, with an SMTP sink on
127.0.0.1 that the server reaches only through the EMAIL_* variables (and must log in to). One request
goes end to end, created by the client installed alone (no Django in its virtualenv): the notification
email arrives in the sink, the reply goes through `hitl process_inbound_email` on stdin, the client's
long-poll returns the answer, and the webhook reaches a local receiver with a valid signature. The
review page's and the admin's CSS must be served (WhiteNoise), with the security headers. /readyz and
/metrics are checked where the server has them.

    python tests/production/e2e.py            # E2E_DATABASE_URL, E2E_REDIS_URL, E2E_PORT_BASE to change

Run with a Python that has aiosmtpd, httpx and psycopg (the project's dev virtualenv); it imports
nothing of the project.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

ROOT = Path(__file__).resolve().parents[2]
DATABASE_URL = os.environ.get("E2E_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hitl_e2e")
REDIS_URL = os.environ.get("E2E_REDIS_URL", "redis://127.0.0.1:6379/1")
PORT_BASE = int(os.environ.get("E2E_PORT_BASE", "0"))
SMTP_USER, SMTP_PASSWORD = "hitl-mailer", "smtp-pass-e2e"
REVIEWER = "reviewer@example.com"
MONDAY = "Ship it on Monday."
STARTED = time.monotonic()
SKIPPED: list[str] = []
# The sink takes AUTH without TLS on purpose: it is on 127.0.0.1 and proves EMAIL_HOST_USER is used.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")


def log(message: str) -> None:
    print(f"[e2e {time.monotonic() - STARTED:5.1f}s] {message}", flush=True)


def free_port(offset: int) -> int:
    if PORT_BASE:
        return PORT_BASE + offset
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*argv: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None, **kw: Any) -> str:
    done = subprocess.run(
        [str(a) for a in argv], env=env, cwd=cwd, capture_output=True, text=True, check=False, timeout=300, **kw
    )
    if done.returncode != 0:
        raise SystemExit(f"FAILED: {' '.join(map(str, argv))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


# --- the fakes: an SMTP sink that insists on the credentials, a webhook receiver ---------------------


class Sink:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        if ok:
            self.logins.append(mechanism)
        return AuthResult(success=ok)


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


def wait_for(what: str, probe: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    raise SystemExit(f"FAILED: timed out waiting for {what}")


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    log(f"ok: {what}")


# --- build and install -------------------------------------------------------------------------------


def build(tmp: Path) -> tuple[Path, Path]:
    """Wheels built from a copy of the checkout (the working tree as it is), so the build leaves nothing
    in the checkout and the installed code can only come from the wheels."""
    files = run("git", "ls-files", "-co", "--exclude-standard", cwd=ROOT).splitlines()
    src = tmp / "src"
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    dist = tmp / "dist"
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", dist]
    run(*pip, src)
    run(*pip, src / "hitl" / "client")
    server = next(dist.glob("hitl_server-*.whl"))
    client = next(dist.glob("hitl_client-*.whl"))
    log(f"built {server.name} and {client.name}")
    return server, client


def venv(path: Path, *install: Path) -> Path:
    run(sys.executable, "-m", "venv", path)
    run(path / "bin" / "pip", "install", "--quiet", *install)
    return path / "bin"


def fresh_database() -> None:
    url = urlsplit(DATABASE_URL)
    name = url.path.lstrip("/")
    admin = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


# --- the run -----------------------------------------------------------------------------------------


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hitl-e2e-"))
    procs: list[subprocess.Popen[bytes]] = []
    smtp = None
    try:
        server_whl, client_whl = build(tmp)
        server_bin = venv(tmp / "server-venv", server_whl)
        client_bin = venv(tmp / "client-venv", client_whl)
        log("installed both into fresh virtualenvs")
        check(
            subprocess.run([client_bin / "python", "-c", "import django"], capture_output=True).returncode != 0,
            "the client's virtualenv has no Django",
        )
        version = run(server_bin / "hitl", "--version", cwd=tmp).strip()
        check(version.startswith("hitl "), f"hitl --version prints {version!r}")

        fresh_database()
        web_port, smtp_port, hook_port, bad_port = (free_port(i) for i in range(4))
        sink = Sink()
        smtp = Controller(
            sink,
            hostname="127.0.0.1",
            port=smtp_port,
            authenticator=sink.authenticate,
            auth_required=True,
            auth_require_tls=False,
        )
        smtp.start()
        receiver = ThreadingHTTPServer(("127.0.0.1", hook_port), Receiver)
        threading.Thread(target=receiver.serve_forever, daemon=True).start()

        base = f"http://127.0.0.1:{web_port}"
        env = {
            "PATH": f"{server_bin}:/usr/bin:/bin",
            "HOME": str(tmp),
            "DEBUG": "0",
            "SECRET_KEY": base64.urlsafe_b64encode(os.urandom(40)).decode(),
            "DATABASE_URL": DATABASE_URL,
            "REDIS_URL": REDIS_URL,
            "ALLOWED_HOSTS": "127.0.0.1",
            "HITL_BASE_URL": base,
            "HITL_INBOUND_DOMAIN": "reply.e2e.test",
            "HITL_ENCRYPTION_KEYS": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            # The audit log's keys (SPEC §18): without them `check` warns (hitl.W002, hitl.W003).
            "HITL_AUDIT_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "HITL_AUDIT_SIGNING_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
            "ANYMAIL_WEBHOOK_SECRET": "esp:e2e-webhook-secret",
            "HITL_EGRESS_ALLOWED_HOSTS": "127.0.0.1",
            "DEFAULT_FROM_EMAIL": "hitl@e2e.test",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_port),
            "EMAIL_HOST_USER": SMTP_USER,
            "EMAIL_HOST_PASSWORD": SMTP_PASSWORD,
            "EMAIL_TIMEOUT": "10",
            "HITL_Q_WORKERS": "1",
        }
        hitl = str(server_bin / "hitl")
        run(hitl, "migrate", "--noinput", env=env, cwd=tmp)
        ops = ["--creator-email", "ops@e2e.test"]
        created_by = run(hitl, "create_deployment", "--name", "E2E", *ops, env=env, cwd=tmp)
        deployment = created_by.strip().splitlines()[-1]
        key = run(hitl, "create_api_key", "--deployment", deployment, env=env, cwd=tmp).strip().splitlines()[-1]
        run(
            hitl, "add_routing_rule", "--deployment", deployment, "--name", "all", "--method-pattern", "*",
            "--assign-to-email", REVIEWER, env=env, cwd=tmp,
        )  # fmt: skip
        secret = run(
            hitl, "add_webhook", "--deployment", deployment, "--url", f"http://127.0.0.1:{hook_port}/hook",
            env=env, cwd=tmp,
        ).strip().splitlines()[-1]  # fmt: skip
        log("migrated; deployment, key, routing rule and webhook created with hitl commands")

        logs = tmp / "logs"
        logs.mkdir()

        def start(name: str, *argv: str, extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
            out = open(logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
            proc = subprocess.Popen(
                [hitl, *argv], env={**env, **(extra or {})}, cwd=tmp, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            procs.append(proc)
            return proc

        start("web", "serve", "--bind", f"127.0.0.1:{web_port}", "--workers", "2", "--threads", "4")
        start("worker-1", "worker")
        start("worker-2", "worker")
        http = httpx.Client(base_url=base, timeout=10)

        def up() -> bool:
            try:
                return http.get("/api/v1/version/").status_code == 200
            except httpx.TransportError:
                return False

        wait_for("hitl serve to answer", up, timeout=60)
        served = http.get("/api/v1/version/").json()
        check(f"hitl {served['version']}" == version, f"GET /api/v1/version/ is {served} (as hitl --version)")

        # The client, alone in its virtualenv, creates the request and long-polls for the result.
        script = tmp / "client.py"
        script.write_text(
            "import json, sys\n"
            "from hitl_client import HitlClient\n"
            "client = HitlClient(sys.argv[1], sys.argv[2])\n"
            "req = client.create_request('Ship release?', method_name='release', emit_options=['approved', 'rejected'],"
            " content='Release notes: **all green**.')\n"
            "print(json.dumps({'id': req['id'], 'status': req['status']}), flush=True)\n"
            "print(json.dumps(client.wait_for_result(req['id'], timeout=120, poll=30)), flush=True)\n"
        )
        client = subprocess.Popen(
            [client_bin / "python", script, base, key], cwd=tmp, stdout=subprocess.PIPE, text=True,
            env={"PATH": f"{client_bin}:/usr/bin:/bin", "HOME": str(tmp)},
        )  # fmt: skip
        assert client.stdout is not None
        created = json.loads(client.stdout.readline())
        check(created["status"] == "pending", f"the installed client created request {created['id']}")

        def notification() -> Any:
            return next((m for m in sink.messages if REVIEWER in str(m["To"])), None)

        email = wait_for("the notification email in the SMTP sink", notification, timeout=60)
        check(bool(sink.logins), f"the worker sent it through EMAIL_HOST:EMAIL_PORT, logged in as {SMTP_USER}")
        reply_to = str(email["Reply-To"])
        text = email.get_body(preferencelist=("plain",)).get_content()
        magic_link = re.search(re.escape(base) + r"/\S+", text)
        check(magic_link is not None and "reply+" in reply_to, "the email has a reply address and a link to us")
        assert magic_link is not None

        # The review page and the admin with DEBUG off: their CSS served by WhiteNoise, hashed, cached.
        page = http.get(magic_link.group(0), follow_redirects=True)
        check(page.status_code == 200, f"the review page opens from the email's link ({page.url.path})")
        csp = page.headers.get("content-security-policy", "")
        check("script-src 'self'" in csp and page.headers.get("x-frame-options") == "DENY", "security headers")
        for where, html in (("review page", page.text), ("admin", http.get("/admin/login/").text)):
            sheets = re.findall(r'href="(/static/[^"]+\.css)"', html)
            check(bool(sheets), f"the {where} links stylesheets ({', '.join(sheets[:2])})")
            for sheet in sheets:
                css = http.get(sheet, headers={"Accept-Encoding": "gzip"})
                ok = css.status_code == 200 and css.headers["content-type"].startswith("text/css")
                cached = "max-age=315360000" in css.headers.get("cache-control", "")
                compressed = css.headers.get("content-encoding") == "gzip" or len(css.content) < 1024
                check(ok and cached and compressed, f"{sheet}: 200 text/css, gzip, cached for good")

        reply = EmailMessage()
        reply["From"], reply["To"], reply["Subject"] = REVIEWER, reply_to, f"Re: {email['Subject']}"
        reply["Message-ID"] = "<e2e-reply@example.com>"
        reply.set_content(f"Approved. {MONDAY}\n\n> quoted original\n")
        processed = subprocess.run(
            [hitl, "process_inbound_email"], input=reply.as_bytes(), env=env, cwd=tmp, capture_output=True
        )
        check(processed.returncode == 0, f"hitl process_inbound_email: {processed.stdout.decode().strip()}")

        result = json.loads(client.stdout.readline())
        client.wait(timeout=30)
        check(
            [result["status"], result["outcome"], result["feedback"]]
            == ["responded", "approved", "Ship it on Monday."],
            f"the client's long-poll returned the answer ({result['outcome']}: {result['feedback']})",
        )

        def delivered() -> Any:
            return next((r for r in Receiver.received if json.loads(r[1]).get("event") == "request_responded"), None)

        headers, body = wait_for("the request_responded webhook", delivered, timeout=60)
        timestamp = headers["x-timestamp"]
        expected = hmac.new(secret.encode(), f"{timestamp}.{body.decode()}".encode(), hashlib.sha256).hexdigest()
        check(
            hmac.compare_digest(headers["x-signature"], f"sha256={expected}"),
            "the webhook reached the receiver with a valid signature",
        )

        ready = http.get("/readyz")
        if ready.status_code == 404:
            SKIPPED.append("/readyz (not in this server yet)")
        else:
            check(ready.status_code == 200, f"/readyz 200 ({ready.text[:200]})")
            start(
                "web-no-db", "serve", "--bind", f"127.0.0.1:{bad_port}", "--workers", "1", "--no-collectstatic",
                extra={"DATABASE_URL": "postgres://postgres@127.0.0.1:1/hitl"},
            )  # fmt: skip
            other = httpx.Client(base_url=f"http://127.0.0.1:{bad_port}", timeout=10)

            def answered() -> Any:
                try:
                    return other.get("/readyz")
                except httpx.TransportError:
                    return None

            unready = wait_for("the server without a database", answered, timeout=60)
            check(unready.status_code == 503, f"/readyz 503 with PostgreSQL unreachable ({unready.text[:200]})")
        metrics = http.get("/metrics")
        if metrics.status_code == 404:
            SKIPPED.append("/metrics (not in this server yet)")
        else:
            check(metrics.status_code == 200, "/metrics 200")
            resolved = re.search(r"^hitl_requests_resolved_total\{[^}]*\} (\d+)", metrics.text, re.M)
            check(resolved is not None and int(resolved.group(1)) >= 1, "/metrics counts the resolved request")
            check("hitl_webhook_deliveries_total" in metrics.text, "/metrics counts webhook deliveries")
        for what in SKIPPED:
            log(f"skipped: {what}")
        log("production end to end: passed")
    except BaseException:
        for path in sorted((tmp / "logs").glob("*.log")) if (tmp / "logs").exists() else []:
            print(f"--- {path.name} (last lines)\n{path.read_text(errors='replace')[-3000:]}", file=sys.stderr)
        raise
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if smtp is not None:
            smtp.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
