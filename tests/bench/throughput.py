"""Throughput of create and respond as a ratio to a bare baseline, on the production stack (issue 8).

    .venv/bin/pip install -e '.[bench]' && apt-get install wrk     # gunicorn, wrk
    .venv/bin/python tests/bench/throughput.py                            # writes tests/bench/results/throughput.md

The stack: a scratch PostgreSQL database, Redis as django-q2's broker, gunicorn (`--workers`, sync) with
`DJANGO_SETTINGS_MODULE=tests.bench.settings` and a `manage.py qcluster`, as in production (DEBUG=0, persistent
database connections, email to Django's locmem backend so nothing leaves the machine). The load comes
from `wrk` in a separate process on 127.0.0.1, `--connections` connections for `--duration` seconds each:

- **baseline**: `POST /bench/baseline/`, a bare view that inserts one row and returns JSON;
- **create**: `POST /api/v1/requests/` with an API key (authentication, validation, routing by a rule,
  the request row, its audit events, the notification enqueued on Redis);
- **respond (API)**: `POST /api/v1/requests/<id>/respond/`, every call a different pending request;
- **respond (callback URL)**: `POST <callback_url>`, likewise;
- **create at half load**: an open-loop generator (`tests/bench/loadgen.py`) sends creates at half the rate wrk
  measured, for `--duration` seconds, and reports p50/p99 latency from each request's scheduled start
  (so queueing counts).

Every figure is also given as a ratio to the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
PYTHON = sys.executable
RESULTS = BASE_DIR / "tests" / "bench" / "results" / "throughput.md"

LUA_POST = """
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
"""

# Each thread walks its own slice of PATHS_FILE (every request a different pending request).
LUA_WALK = """
local paths = {}
for line in io.lines(os.getenv("PATHS_FILE")) do paths[#paths + 1] = line end
local nthreads = tonumber(os.getenv("THREADS"))
local counter = 0
local created = 0
function setup(thread) thread:set("tid", created); created = created + 1 end
function request()
  counter = counter + 1
  local i = tid + (counter - 1) * nthreads + 1
  local path = paths[((i - 1) % #paths) + 1]
  local headers = {["Content-Type"] = "application/json"}
  local auth = os.getenv("AUTH")
  if auth and auth ~= "" then headers["Authorization"] = auth end
  return wrk.format("POST", path, headers, os.getenv("BODY"))
end
"""


def run(cmd: list[str], env: dict[str, str], **kwargs: Any) -> str:
    out = subprocess.run(cmd, env=env, cwd=BASE_DIR, capture_output=True, text=True, check=False, **kwargs)
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def parse_wrk(text: str) -> dict[str, Any]:
    def latency(label: str) -> float | None:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not match:
            return None
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    return {
        "rps": rps,
        "requests": total,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
        "p50": latency("50"),
        "p99": latency("99"),
    }


def machine() -> str:
    cpu = "?"
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"^Model name:\s+(.+)$", lscpu, re.M)
    if match:
        cpu = match.group(1).strip()
    else:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False).stdout
    redis_version = re.search(r"v=(\S+)", redis)
    import django

    return (
        f"{os.cpu_count()} vCPU {cpu}, {mem} GiB RAM, Linux {platform.release()} {platform.machine()}; "
        f"CPython {platform.python_version()}, Django {django.__version__}, "
        f"{pg.replace('psql (PostgreSQL)', 'PostgreSQL')} and Redis {redis_version.group(1) if redis_version else ''} "
        "on the same machine (its `autovacuum` setting: "
        + subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-At", "-c", "SHOW autovacuum"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        + "; the script runs VACUUM (ANALYZE) before each figure)"
    )


class Stack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="hitl-thru-"))
        self.base = f"http://127.0.0.1:{args.port}"
        from cryptography.fernet import Fernet

        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.bench.settings",
            "DEBUG": "0",
            "SECRET_KEY": "bench-secret-key-not-for-production",
            "ANYMAIL_WEBHOOK_SECRET": "bench:bench",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "HITL_BASE_URL": self.base,
            "HITL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.database}",
            "REDIS_URL": args.redis,
            "DB_CONN_MAX_AGE": "60",
            "HITL_Q_WORKERS": "2",
            "LOG_LEVEL": "WARNING",
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def prepare(self) -> None:
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", self.args.database], check=True)
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", self.args.database], check=True)
        subprocess.run(["redis-cli", "-u", self.args.redis, "flushdb"], check=True, capture_output=True)
        run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], self.env)
        out = run([PYTHON, "manage.py", "bench_seed", "--requests", "0", "--deployments", "1"], self.env)
        self.key = re.search(r"API key for deployment \d+: (\S+)", out).group(1)  # type: ignore[union-attr]
        run(
            [
                PYTHON,
                "manage.py",
                "add_routing_rule",
                "--deployment",
                "1",
                "--name",
                "Reviews",
                "--method-pattern",
                "review_*",
                "--assign-to-email",
                "reviewer0@bench.example",
            ],
            self.env,
        )

    def pending(self, n: int) -> tuple[Path, Path]:
        """n pending requests (bulk-inserted), with their respond paths and callback paths in two files."""
        api, callback = self.tmp / "respond.txt", self.tmp / "callback.txt"
        script = f"""
from hitl.models import HITLRequest, AssignmentStep
from hitl.lib.links import callback_url
from accounts.models import Deployment
d = Deployment.objects.order_by("pk").first()
fields = dict(deployment=d, message="Please review", emit_options=["approved", "rejected"],
    method_name="review_content", assigned_to_email="reviewer0@bench.example",
    assignment_step=AssignmentStep.RULE_EMAIL)
rows = HITLRequest.objects.bulk_create([HITLRequest(**fields) for _ in range({n})], batch_size=2000)
half = len(rows) // 2
open({str(api)!r}, "w").write("".join(f"/api/v1/requests/{{r.pk}}/respond/\\n" for r in rows[:half]))
base = {self.base!r}
open({str(callback)!r}, "w").write("".join(callback_url(r)[len(base):] + "\\n" for r in rows[half:]))
"""
        run([PYTHON, "manage.py", "shell", "-c", script], self.env)
        return api, callback

    def start(self) -> None:
        log = open(self.tmp / "server.log", "wb")  # noqa: SIM115 - kept open while the processes run
        self.procs.append(
            subprocess.Popen([PYTHON, "manage.py", "qcluster"], env=self.env, cwd=BASE_DIR, stdout=log, stderr=log)
        )
        gunicorn = shutil.which("gunicorn", path=str(Path(PYTHON).parent)) or "gunicorn"
        self.procs.append(
            subprocess.Popen(
                [
                    gunicorn,
                    "hitl.wsgi",
                    "--bind",
                    f"127.0.0.1:{self.args.port}",
                    "--workers",
                    str(self.args.workers),
                    "--worker-class",
                    "sync",
                    "--access-logfile",
                    "-" if False else "/dev/null",
                ],
                env=self.env,
                cwd=BASE_DIR,
                stdout=log,
                stderr=log,
            )
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                req = urllib.request.Request(f"{self.base}/bench/baseline/", data=b"{}", method="POST")  # noqa: S310
                with urllib.request.urlopen(req, timeout=2):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()  # nothing left behind holding the scratch database
        raise SystemExit(f"gunicorn did not start; see {self.tmp / 'server.log'}")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    def backlog(self) -> int:
        """Tasks waiting in django-q2's Redis queue (notifications, webhook deliveries)."""
        out = subprocess.run(
            ["redis-cli", "-u", self.args.redis, "llen", "django_q:hitl:q"], capture_output=True, text=True, check=True
        )
        return int(out.stdout.strip() or 0)

    def drain(self, limit: float = 180) -> tuple[int, float]:
        """Wait until the workers have caught up with the previous figure's tasks, so that they do not
        compete with the next one for the CPU. Returns (tasks queued at the start, seconds taken)."""
        start, queued = time.monotonic(), self.backlog()
        while self.backlog() and time.monotonic() - start < limit:
            time.sleep(0.5)
        time.sleep(1)  # the last tasks running
        return queued, time.monotonic() - start

    def rss(self) -> dict[str, list[float]]:
        """Resident memory (MiB) of every process of the stack, by kind: the gunicorn master and its
        workers, the qcluster's processes (sentinel, pusher, workers, monitor)."""
        parent: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(stat.parent.name)] = int(fields[1])

        def tree(root: int) -> list[int]:
            found = [root]
            for pid in found:
                found.extend(child for child, ppid in parent.items() if ppid == pid)
            return found

        def mib(pid: int) -> float:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
            return 0.0

        qcluster, gunicorn = self.procs[0].pid, self.procs[1].pid
        return {
            "gunicorn master": [mib(gunicorn)],
            "gunicorn workers": sorted(mib(pid) for pid in tree(gunicorn)[1:]),
            "qcluster processes": sorted(mib(pid) for pid in tree(qcluster)),
        }

    def psql(self, sql: str) -> str:
        out = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-At", "-d", self.args.database, "-c", sql],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def requests_created(self) -> int:
        return int(self.psql("SELECT count(*) FROM hitl_hitlrequest"))

    def wrk(self, path: str, lua: str, duration: int | None = None, **env: str) -> dict[str, Any]:
        self.drained = self.drain()
        # What autovacuum does between bursts in production (this machine's server may run with it off:
        # `autovacuum` in the Machine line): without it the rollup rows every request updates keep their
        # dead versions and each figure would pay for the previous ones' (issue 21).
        self.psql("VACUUM (ANALYZE)")
        script = self.tmp / f"s{abs(hash(lua + path))}.lua"
        script.write_text(lua)
        threads = "2"
        cmd = [
            "wrk",
            "--latency",
            "-t",
            threads,
            "-c",
            str(self.args.connections),
            "-d",
            f"{duration or self.args.duration}s",
            "-s",
            str(script),
            f"{self.base}{path}",
        ]
        out = subprocess.run(
            cmd, env={**os.environ, "THREADS": threads, **env}, capture_output=True, text=True, check=True
        )
        result = parse_wrk(out.stdout)
        result["raw"] = out.stdout
        result["backlog"] = self.backlog()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="hitl_bench_thru")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--port", type=int, default=8120)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--label", default="")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--rss-creates", type=int, default=10_000, help="requests made before memory is read")
    parser.add_argument("--keep-database", action="store_true", help="do not drop the scratch database at the end")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.bench.settings")

    load_before = os.getloadavg()
    stack = Stack(args)
    stack.prepare()
    respond_paths, callback_paths = stack.pending(40_000)
    stack.start()
    seeded = stack.requests_created()  # the pending ones for the answers, not made through the server
    auth = f"Bearer {stack.key}"
    create_body = json.dumps(
        {"message": "Please review", "emit_options": ["approved", "rejected"], "method_name": "review_content"}
    )
    figures: dict[str, dict[str, Any]] = {}
    try:
        stack.wrk("/bench/baseline/", LUA_POST, BODY='{"warm": 1}', AUTH="")  # warm-up, not reported
        figures["baseline"] = stack.wrk("/bench/baseline/", LUA_POST, BODY='{"n": 1}', AUTH="")
        figures["create"] = stack.wrk("/api/v1/requests/", LUA_POST, BODY=create_body, AUTH=auth)
        drained = stack.drain()  # the notifications create left behind: how fast the workers catch up
        figures["respond (API)"] = stack.wrk(
            "/", LUA_WALK, PATHS_FILE=str(respond_paths), BODY='{"outcome": "approved"}', AUTH=auth
        )
        figures["respond (callback URL)"] = stack.wrk(
            "/", LUA_WALK, PATHS_FILE=str(callback_paths), BODY='{"feedback": "approved", "source": "bench"}', AUTH=""
        )
        rate = figures["create"]["rps"] / 2
        stack.drain()
        out = subprocess.run(
            [
                PYTHON,
                str(BASE_DIR / "tests" / "bench" / "loadgen.py"),
                "--url",
                f"{stack.base}/api/v1/requests/",
                "--rate",
                f"{rate:.1f}",
                "--duration",
                str(args.duration),
                "--body",
                create_body,
                "--auth",
                auth,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        figures["create at half load"] = {**json.loads(out.stdout), "rate": rate, "backlog": stack.backlog()}
        # Memory per process after `--rss-creates` creates through the server (made up with more creates
        # if the runs above made fewer), once the queue has drained.
        missing = args.rss_creates - (stack.requests_created() - seeded)
        if missing > 0:
            seconds = int(missing / max(figures["create"]["rps"], 1.0)) + 1
            stack.wrk("/api/v1/requests/", LUA_POST, duration=seconds, BODY=create_body, AUTH=auth)
        stack.drain()
        memory = {"requests": stack.requests_created() - seeded, **stack.rss()}
    finally:
        stack.stop()
    load_after = os.getloadavg()
    # SQL queries of one create / respond / callback (tests/bench/profile_requests.py, in-process, same settings).
    counted = run([PYTHON, "tests/bench/profile_requests.py", "--key", stack.key, "--json"], stack.env)
    queries = json.loads(counted.strip().splitlines()[-1])
    if not args.keep_database:
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", args.database], check=False)

    base_rps = figures["baseline"]["rps"]
    goals = {  # issue 21
        "create": ("≥ 0.25 × baseline", 0.25),
        "respond (API)": ("≥ 0.35 × baseline", 0.35),
        "respond (callback URL)": ("≥ 0.35 × baseline", 0.35),
    }
    lines = [
        "| figure | req/s | ratio to baseline | p50 (ms) | p99 (ms) | non-2xx | SQL queries | tasks queued at end "
        "| goal | met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    per_figure = {
        "baseline": 1,
        "create": queries.get("create"),
        "respond (API)": queries.get("respond"),
        "respond (callback URL)": queries.get("callback"),
        "create at half load": queries.get("create"),
    }
    for name, f in figures.items():
        if name == "create at half load":
            met = "yes" if f["p99"] <= 50 else "**no**"
            lines.append(
                f"| {name} ({f['rate']:.0f} req/s offered, open loop) | {f['achieved']:.1f} | "
                f"{f['achieved'] / base_rps:.2f} | {f['p50']:.1f} | {f['p99']:.1f} | {f['errors']} "
                f"| {per_figure[name]} | {f['backlog']} | p99 ≤ 50 ms | {met} |"
            )
            continue
        goal, ratio_goal = goals.get(name, ("—", 0.0))
        ratio = f["rps"] / base_rps
        met = "—" if not ratio_goal else ("yes" if ratio >= ratio_goal else "**no**")
        lines.append(
            f"| {name} | {f['rps']:.1f} | {ratio:.2f} | {f['p50'] or 0:.1f} | {f['p99'] or 0:.1f} | {f['non_2xx']} "
            f"| {per_figure[name]} | {f['backlog']} | {goal} | {met} |"
        )
    table = "\n".join(lines)
    rows = [
        f"| {kind} | {len(values)} | {', '.join(f'{v:.0f}' for v in values)} |"
        for kind, values in memory.items()
        if kind != "requests"
    ]
    memory_table = "\n".join(["| processes | count | RSS each (MiB) |", "|---|---:|---|", *rows])
    print(table)
    print(f"after {memory['requests']} requests in the database:")
    print(memory_table)
    if args.no_write:
        return
    section = f"""## Throughput against the baseline{(" — " + args.label) if args.label else ""}

**Machine.** {machine()}.
**Date.** {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.
**Load average** (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f}.

**Command.**

```bash
.venv/bin/python tests/bench/throughput.py {" ".join(sys.argv[1:])}
```

**Method.** See the module docstring of `tests/bench/throughput.py`: gunicorn with {args.workers} sync workers,
a `qcluster` with 2 workers, PostgreSQL and Redis, all on this machine with the load generator; wrk with
2 threads and {args.connections} connections for {args.duration} s per figure. *SQL queries*: per
request of that kind, counted in-process by `tests/bench/profile_requests.py --json` (the baseline: its insert).
*Tasks queued at end*: django-q2's Redis queue when the figure's load stopped (work the `qcluster` had
not caught up with: each create enqueues its notification); before each figure the script waits for it
to drain, so no figure pays for the previous one's tasks.

{table}

**Memory** after {memory["requests"]:,} creates through the server (the queue drained; `VmRSS` per process):

{memory_table}

The {drained[0]} notification tasks create left queued took the `qcluster` {drained[1]:.1f} s to work off
with no web load ({drained[0] / max(drained[1] - 1, 0.1):.0f} tasks/s).
"""
    RESULTS.parent.mkdir(exist_ok=True)
    previous = RESULTS.read_text() if RESULTS.exists() else "# Throughput (`tests/bench/throughput.py`)\n"
    RESULTS.write_text(previous.rstrip() + "\n\n" + section)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
