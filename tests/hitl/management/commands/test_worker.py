"""`manage.py worker` (`hitl worker`) stops cleanly within 10 s on SIGTERM or SIGINT, sent to it alone or
to its whole process group, and the task it holds is finished, never lost (django-q2 #346)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from django_q.models import OrmQ, Task
from django_q.tasks import async_task

from tests.support.qcluster import QCluster

STOPS = 10


def wait_for(path: Path, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} never said {text!r}")


@pytest.mark.parametrize("group", [False, True], ids=["alone", "group"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
class TestWorkerStop:
    def test_it_stops_within_10_s_and_finishes_the_task_in_flight(
        self, qcluster: QCluster, tmp_path: Path, signum: int, group: bool
    ) -> None:
        qcluster.extra_env["HITL_Q_POLL"] = "0.2"  # the ORM broker's poll bounds both the start and the stop
        for i in range(STOPS):
            qcluster.start()
            mark = tmp_path / f"task-{i}.txt"
            task_id = async_task("tests.support.tasks.slow_mark", str(mark), 0.5, sync=False)
            wait_for(mark, "started")
            took = qcluster.send(signum, group=group)
            assert took < 10, f"stop {i} took {took:.1f}s"
            # Finished, its result saved and acknowledged: nothing to run again, nothing lost.
            assert mark.read_text() == "started\ndone\n", f"stop {i}: the task in flight was cut short"
            task = Task.objects.get(id=task_id)
            assert task.success and task.result == "done"
            assert not OrmQ.objects.exists()


class TestWorkerStopDeadline:
    def test_a_task_longer_than_the_deadline_is_killed_and_handed_out_again(
        self, qcluster: QCluster, tmp_path: Path, settings: Any
    ) -> None:
        if settings.REDIS_URL:
            pytest.skip("the Redis broker does not redeliver a task whose worker was killed")
        qcluster.extra_env.update(HITL_Q_POLL="0.2", HITL_WORKER_STOP_TIMEOUT="2")
        qcluster.start()
        mark = tmp_path / "long.txt"
        task_id = async_task("tests.support.tasks.slow_mark", str(mark), 60, sync=False)
        wait_for(mark, "started")
        took = qcluster.send(signal.SIGTERM, group=True)
        assert 2 <= took < 10, took
        assert "killing" in qcluster.log()
        assert mark.read_text() == "started\n" and not Task.objects.filter(id=task_id).exists()
        # Not acknowledged: still in the ORM broker's queue, for the next worker once its lock expires.
        (queued,) = OrmQ.objects.all()
        assert queued.task_id() == task_id
