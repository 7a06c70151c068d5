"""`manage.py worker` (`hitl worker`): a django-q2 cluster that stops cleanly on SIGTERM or SIGINT.

django-q2's own `qcluster` stops from inside its signal handler, and its cluster processes die of (or
ignore) the same signal: sent to the whole process group (systemd's default stop, a shell's `kill 0`,
Ctrl-C in a terminal) it kills the sentinel while it sleeps on the stop event's condition, and the
master then waits in `Event.set()` for that dead sleeper forever (django-q2 #346). Here the cluster's
processes ignore SIGTERM and SIGINT, so only this process reacts: its handler just records the signal,
and the main loop sets the stop event (from a helper thread, so that even a dead sentinel cannot block
it), lets the sentinel drain (the pusher stops pulling, every worker finishes the task it holds and any
already pulled, the monitor saves and acknowledges the results), and kills what is left at a hard
deadline. A task killed there is not acknowledged: the ORM broker hands it out again after `retry`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from multiprocessing import Event
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

logger = logging.getLogger("hitl.worker")

# The hard deadline, measured from the signal, must leave room inside systemd's / the brief's 10 s.
DEFAULT_STOP_TIMEOUT = 8.0
# Seconds between the audit sealer's passes (SPEC §18: events are sealed "shortly after").
SEAL_INTERVAL = 1.0


def _descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (Linux /proc; empty elsewhere), children before grandchildren."""
    parents: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: the fields start after the last ")".
        fields = stat[stat.rfind(b")") + 2 :].split()
        parents.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    queue = [pid]
    while queue:
        children = parents.get(queue.pop(0), [])
        found.extend(children)
        queue.extend(children)
    return found


def _become_subreaper() -> None:
    """Linux: orphaned descendants (a killed sentinel's workers) become our children, so we reap them
    instead of leaving zombies to a PID 1 that may not (a container's)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _reap(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no children left
        if pid == 0:
            time.sleep(0.02)


def _sealer(stop: threading.Event, interval: float) -> None:
    """The audit log's sealer (SPEC §18): every `interval` seconds, chain the events committed since.
    Several workers may run one each: a pass that finds the seal lock taken returns at once."""
    from django import db

    from audit.services import LegacyLogError, seal_events

    while not stop.wait(interval):
        try:
            seal_events()
        except LegacyLogError as exc:
            logger.error("audit sealer: %s", exc)
            stop.wait(60)
        except Exception:  # a database outage: log it and try again at the next tick
            logger.exception("audit sealer: a pass failed")
            db.connections.close_all()
    db.connections.close_all()


def _ticker(stop: threading.Event, interval: float) -> None:
    """Every `interval` seconds, the pass that finds due work (`hitl.services.sweep.tick`): timeouts,
    SLA marks, reminders, escalations, webhook retries, each within seconds of its time. Several
    workers may run one each: a pass that finds another at work returns at once."""
    from django import db

    from hitl.services.sweep import tick

    wait = interval
    while not stop.wait(wait):
        started = time.monotonic()
        try:
            tick()
        except Exception:  # a database outage: log it and try again at the next tick
            logger.exception("ticker: a pass failed")
            db.connections.close_all()
        # A pass every `interval`, not `interval` after each pass: a slow pass does not push the next.
        wait = max(0.05, interval - (time.monotonic() - started))
    db.connections.close_all()


def _sentinel(stop_event: Any, start_event: Any, cluster_id: Any, broker: Any, timeout: Any) -> None:
    """The cluster's sentinel, deaf to SIGTERM and SIGINT like every process it forks (they inherit
    the dispositions): the master alone decides when to stop."""
    from django_q.cluster import Sentinel

    class DeafSentinel(Sentinel):
        def reincarnate(self, process: Any) -> None:
            # django-q2 ends a timed-out worker with SIGTERM, which workers here ignore: SIGKILL it.
            if process in self.pool and process.timer.value == 0 and process.is_alive():
                process.kill()
                process.join(1)
            super().reincarnate(process)

    # Sentinel.__init__ resets SIGTERM to the default (death): ignore both after it, before start()
    # forks the pool, pusher and monitor.
    sentinel = DeafSentinel(stop_event, start_event, cluster_id, broker, timeout, start=False)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sentinel.start()


class Command(BaseCommand):
    help = "Runs a django-q2 worker cluster that stops cleanly within seconds on SIGTERM or SIGINT."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--stop-timeout",
            type=float,
            default=float(os.environ.get("HITL_WORKER_STOP_TIMEOUT", DEFAULT_STOP_TIMEOUT)),
            help="seconds a stop may take before what is left is killed (default 8, HITL_WORKER_STOP_TIMEOUT)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        import uuid

        from django import db
        from django_q.cluster import get_mp_context
        from django_q.humanhash import humanize

        settings.SECRET_KEY  # noqa: B018 (django-q2 signs every task with it: fail now, not in a child)
        stop_timeout: float = options["stop_timeout"]
        received: list[int] = []

        def on_signal(signum: int, frame: FrameType | None) -> None:
            # Only record it: anything that takes a lock here can deadlock against the frame it interrupted.
            received.append(signum)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        _become_subreaper()

        cluster_id = uuid.uuid4()
        name = humanize(cluster_id.hex)
        stop_event, start_event = Event(), Event()
        db.connections.close_all()  # the children must not share this process's connections
        sentinel = get_mp_context().Process(
            target=_sentinel,
            name=f"Process-{uuid.uuid4().hex}",
            args=(stop_event, start_event, cluster_id, None, None),
        )
        sentinel.start()
        logger.info("worker %s started (pid %s, sentinel %s)", name, os.getpid(), sentinel.pid)
        # Started after the fork of the sentinel: its connection is this process's alone.
        sealer_stop = threading.Event()
        sealer = threading.Thread(target=_sealer, args=(sealer_stop, SEAL_INTERVAL), name="audit-sealer", daemon=True)
        sealer.start()
        if settings.HITL_TICK_SECONDS > 0:
            ticker = threading.Thread(
                target=_ticker, args=(sealer_stop, settings.HITL_TICK_SECONDS), name="ticker", daemon=True
            )
            ticker.start()

        while not received and sentinel.is_alive():
            time.sleep(0.1)
        if not received:
            logger.error("worker %s: the sentinel exited with code %s", name, sentinel.exitcode)
            raise SystemExit(1)

        deadline = time.monotonic() + stop_timeout
        logger.info("worker %s stopping on %s", name, signal.Signals(received[0]).name)
        sealer_stop.set()  # the sealer's and the ticker's work in flight commits or, killed, rolls back
        # A daemon thread: Event.set() waits for every sleeper on the event to wake, and a sleeper that
        # was killed never does; the main thread must stay free to enforce the deadline.
        threading.Thread(target=stop_event.set, daemon=True).start()
        sentinel.join(max(0.0, deadline - time.monotonic()))
        leftovers = _descendants(os.getpid())
        if sentinel.is_alive() or leftovers:
            logger.warning("worker %s did not drain within %ss: killing %s", name, stop_timeout, leftovers)
            for pid in reversed(leftovers):  # the workers before the sentinel that would replace them
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            sentinel.join(1)
            _reap(1.0)
        logger.info("worker %s stopped", name)
        # Skip multiprocessing's exit handlers: they would join the (now dead or killed) children again.
        logging.shutdown()
        os._exit(0)
