"""Run what tasks this process queued on the real broker (the `qcluster` fixture, not started), in order,
here: a test decides what a worker would have run, and when."""

from __future__ import annotations

from typing import Any


def run_queued(*, hold: str = "") -> list[tuple[str, tuple[Any, ...]]]:
    """Run what is queued on the real broker in this process, in order, until nothing is left; tasks named
    `hold` are taken off the queue and returned instead of run (they are "not delivered yet")."""
    from django.utils.module_loading import import_string
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker = get_broker()
    held: list[tuple[str, tuple[Any, ...]]] = []
    for _ in range(50):
        batch = broker.dequeue()
        if not batch:
            return held
        for task_id, package in batch:
            task = SignedPackage.loads(package)
            broker.acknowledge(task_id)
            if task["func"] == hold:
                held.append((task["func"], tuple(task["args"])))
            else:
                import_string(task["func"])(*task["args"], **task.get("kwargs", {}))
    raise AssertionError("the queue never drained")
