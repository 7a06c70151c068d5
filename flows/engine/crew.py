"""Crew-style tasks with `human_input`: the run pauses after the task until the resume endpoint approves
it or sends it back to run again with the feedback."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from audit.models import EventType
from audit.services import record_event
from flows.engine.queue import _enqueue_step, listeners_for
from flows.errors import FlowError
from flows.models import FlowRun, FlowStep, RunStatus, StepStatus
from flows.registry import get_flow
from flows.runtime import MethodSpec
from flows.webhooks import check_urls


def _task_id(spec: MethodSpec) -> str:
    return spec.task["task_id"] if spec.task else spec.name


def resume_task(
    run: FlowRun, *, task_id: str, feedback: str, is_approve: bool, webhooks: dict[str, str], actor: str
) -> FlowRun:
    """`POST /deployments/{id}/resume/`: approve → continue; reject → run the task again with the feedback."""
    if run.status != RunStatus.PENDING_HUMAN_INPUT:
        raise FlowError(
            f"This execution is {run.get_status_display().lower()}, not pending human input.", "not_pending"
        )
    if task_id != run.pending_task:
        raise FlowError(f"The execution is waiting on task {run.pending_task!r}, not {task_id!r}.", "wrong_task")
    flow_cls = get_flow(run.flow_name)
    assert flow_cls is not None
    methods = flow_cls.methods()
    spec = next(s for s in methods.values() if s.task and _task_id(s) == task_id)
    step = run.steps.filter(method_name=spec.name).order_by("-seq").first()
    task_feedback = dict(run.task_feedback or {})
    progress = dict(run.and_progress or {})
    if is_approve:
        output = step.output if step else None
        queue = list(run.queue) + [
            {"method": n, "payload": output, "trigger": spec.name} for n in listeners_for(methods, spec.name, progress)
        ]
    else:
        task_feedback[task_id] = [*task_feedback.get(task_id, []), feedback]
        queue = [
            {"method": spec.name, "payload": step.input if step else None, "trigger": "human_feedback"},
            *run.queue,
        ]
    status = RunStatus.RUNNING if queue else RunStatus.COMPLETED
    with transaction.atomic():
        won = FlowRun.objects.filter(pk=run.pk, status=RunStatus.PENDING_HUMAN_INPUT, seq=run.seq).update(
            status=status,
            queue=queue,
            and_progress=progress,
            task_feedback=task_feedback,
            pending_task="",
            seq=run.seq + 1,
            webhooks=check_urls(webhooks),
            updated_at=timezone.now(),
            finished_at=None if status == RunStatus.RUNNING else timezone.now(),
        )
        if not won:
            raise FlowError("This execution was resumed by someone else just now.", "not_pending")
        if step is not None:
            FlowStep.objects.filter(pk=step.pk).update(
                status=StepStatus.COMPLETED, result={"human_feedback": feedback, "is_approve": is_approve}
            )
        record_event(
            EventType.FLOW_RESUMED,
            actor=actor,
            source="api",
            target=run,
            deployment_id=run.deployment_id,
            data={"task_id": task_id, "is_approve": is_approve},
        )
        if status == RunStatus.RUNNING:
            _enqueue_step(run.pk, run.seq + 1)
    run.refresh_from_db()
    return run
