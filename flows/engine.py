"""Runs flows durably on django-q2 (SPEC §8).

A run is a queue of (method, payload) items. `run_step` executes the head of the queue as one task,
then saves state, the step record, the new queue and `seq + 1` with a compare-and-set on `seq`, so a
task delivered twice (a worker killed mid-step, a broker retry) never records a step twice. A human step
creates a review request and leaves the run `waiting_for_human` — no worker waits. When the request
resolves (any channel, or its timeout), `resume_after_request` continues the run, again exactly once.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Deployment
from audit.models import EventType
from audit.services import record_event
from flows.models import DeploymentFlow, FlowRun, FlowStep, RunStatus, StepStatus
from flows.registry import get_flow
from flows.runtime import Condition, HumanFeedbackResult, HumanStep, MethodSpec
from hitl.lib.errors import HitlError
from hitl.lib.paths import MISSING, resolve_path
from hitl.models import HITLRequest, Mode, Status
from hitl.results import empty_result

logger = logging.getLogger(__name__)


class FlowError(HitlError):
    """A kickoff or resume the caller got wrong; `code` is stable for the API."""

    def __init__(self, detail: str, code: str):
        super().__init__(detail, code=code)
        self.status = 409 if code == "not_pending" else 400


# --- scheduling ------------------------------------------------------------------------------------


def _enqueue_step(run_id: Any, seq: int) -> None:
    from hitl.lib.queue import enqueue

    transaction.on_commit(lambda: enqueue("flows.tasks.run_step", str(run_id), seq))


def to_json(value: Any) -> Any:
    """Step outputs are stored as JSON; pydantic models and feedback results are converted."""
    if isinstance(value, HumanFeedbackResult):
        return value.to_json()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def from_json(value: Any) -> Any:
    if isinstance(value, dict) and value.get("__human_feedback_result__"):
        return HumanFeedbackResult.from_json(value)
    return value


def listeners_for(methods: dict[str, MethodSpec], event: str, progress: dict[str, list[str]]) -> list[str]:
    """Methods that fire on `event`; `and_` listeners fire once every part was seen (then reset)."""
    fired = []
    for spec in methods.values():
        condition = spec.condition
        if condition is None or event not in condition.names():
            continue
        if condition.kind == "or" and _or_fires(condition, event, progress, spec.name):
            fired.append(spec.name)
        elif condition.kind == "and":
            seen = set(progress.get(spec.name, [])) | {event}
            if seen >= condition.names():
                progress.pop(spec.name, None)
                fired.append(spec.name)
            else:
                progress[spec.name] = sorted(seen)
    return fired


def _or_fires(condition: Condition, event: str, progress: dict[str, list[str]], key: str) -> bool:
    for item in condition.items:
        if item == event:
            return True
        if isinstance(item, Condition) and event in item.names():
            nested_key = f"{key}:{sorted(item.names())}"
            if item.kind == "or":
                return True
            seen = set(progress.get(nested_key, [])) | {event}
            if seen >= item.names():
                progress.pop(nested_key, None)
                return True
            progress[nested_key] = sorted(seen)
    return False


# --- kickoff ---------------------------------------------------------------------------------------


def flow_for_deployment(deployment: Deployment, name: str | None) -> str:
    attached = list(DeploymentFlow.objects.filter(deployment=deployment).values_list("flow_name", flat=True))
    if not attached:
        raise FlowError("This deployment has no flows attached.", "no_flows")
    if not name:
        if len(attached) > 1:
            raise FlowError(f"Name the flow to run: one of {', '.join(sorted(attached))}.", "flow_required")
        name = attached[0]
    if name not in attached:
        raise FlowError(f"Unknown flow {name!r} for this deployment: {', '.join(sorted(attached))}.", "unknown_flow")
    if get_flow(name) is None:
        raise FlowError(f"The flow {name!r} is not registered in this server's code.", "unknown_flow")
    return name


@transaction.atomic
def kickoff(
    deployment: Deployment,
    *,
    flow: str | None,
    inputs: dict[str, Any],
    webhooks: dict[str, str] | None = None,
    sync: bool = False,
    actor: str,
) -> FlowRun:
    name = flow_for_deployment(deployment, flow)
    flow_cls = get_flow(name)
    assert flow_cls is not None
    if sync and flow_cls.has_human_step():
        raise FlowError(
            f"The flow {name!r} contains a human step and cannot run synchronously: kick it off without "
            '"sync" and follow it with GET /api/v1/executions/{id}/ or the webhooks.',
            "sync_not_supported",
        )
    if not isinstance(inputs, dict):
        raise FlowError("inputs must be a JSON object.", "invalid")
    try:
        state = flow_cls(inputs).dump_state()
    except Exception as exc:  # a pydantic state model refusing the inputs
        raise FlowError(f"inputs do not fit the flow's state: {exc}", "invalid") from exc
    methods = flow_cls.methods()
    queue = [{"method": spec.name, "payload": None, "trigger": "start"} for spec in methods.values() if spec.is_start]
    if not queue:
        raise FlowError(f"The flow {name!r} has no @start() method.", "invalid_flow")
    from flows import webhooks as run_webhooks
    from hitl.lib import crypto
    from hitl.lib.webhook_signing import generate_secret

    urls = run_webhooks.check_urls(webhooks or {})
    secret = generate_secret() if urls else ""
    run = FlowRun.objects.create(
        deployment=deployment,
        flow_name=name,
        inputs=inputs,
        state=state,
        queue=queue,
        webhooks=urls,
        webhook_secret=crypto.encrypt(secret) if secret else "",
    )
    # Shown once, in the kickoff response; only its encrypted form is stored.
    run.plain_webhook_secret = secret  # type: ignore[attr-defined]
    if flow_cls._state_model is None and "id" not in state:
        # CrewAI flows find their run id in state["id"]; keep that habit.
        run.state = {"id": str(run.pk), **state}
        FlowRun.objects.filter(pk=run.pk).update(state=run.state)
    record_event(
        EventType.CONFIG_CHANGED,
        actor=actor,
        source="api",
        target=run,
        deployment_id=deployment.pk,
        data={"action": "flow.kickoff", "flow": name},
    )
    if sync:
        transaction.on_commit(lambda: _run_inline(run.pk))
    else:
        _enqueue_step(run.pk, 0)
    return run


def _run_inline(run_id: Any) -> None:
    """`"sync": true` for flows without human steps: run every step now, in this process."""
    for _ in range(10_000):
        run = FlowRun.objects.get(pk=run_id)
        if run.status != RunStatus.RUNNING:
            return
        run_step(str(run.pk), run.seq, chain=False)


# --- one step --------------------------------------------------------------------------------------


def run_step(run_id: str, seq: int, *, chain: bool = True) -> None:
    """Execute the head of the run's queue, once. A duplicate delivery finds `seq` moved on and stops."""
    run = FlowRun.objects.select_related("deployment").filter(pk=run_id).first()
    if run is None or run.status != RunStatus.RUNNING or run.seq != seq:
        return
    flow_cls = get_flow(run.flow_name)
    if flow_cls is None:
        _fail(run, seq, f"flow {run.flow_name!r} is no longer registered")
        return
    if not run.queue:
        _finish(run, seq, RunStatus.COMPLETED)
        return
    item, rest = run.queue[0], list(run.queue[1:])
    methods = flow_cls.methods()
    spec = methods.get(item["method"])
    if spec is None:
        _fail(run, seq, f"method {item['method']!r} does not exist on {run.flow_name}")
        return
    flow = flow_cls(run.state, run_id=str(run.pk), task_context=(run.task_feedback or {}).get(_task_id(spec), []))
    started, clock = timezone.now(), time.monotonic()
    argument = from_json(item.get("payload"))
    if isinstance(argument, HumanFeedbackResult):
        flow.last_human_feedback = argument
    try:
        output = getattr(flow, spec.name)(argument) if spec.takes_argument else getattr(flow, spec.name)()
    except Exception as exc:
        logger.exception("flow %s step %s failed", run.pk, spec.name)
        error = f"step {spec.name} raised {type(exc).__name__}: {exc}"
        with transaction.atomic():
            if _advance(run, seq, status=RunStatus.FAILED, queue=rest, error=error[:5000]):
                _record(run, seq, spec, item, started, clock, status=StepStatus.FAILED, error=error)
                transaction.on_commit(lambda: notify_crew_webhook(str(run.pk)))
        return
    output_json = to_json(output)
    state = flow.dump_state()
    progress = dict(run.and_progress or {})

    with transaction.atomic():
        if spec.human is not None:
            try:
                request = _create_review(run, spec, spec.human, output_json, state)
            except Exception as exc:
                detail = getattr(exc, "detail", str(exc))
                won = _advance(
                    run,
                    seq,
                    state=state,
                    queue=rest,
                    progress=progress,
                    status=RunStatus.FAILED,
                    error=f"could not create the review request for {spec.name}: {detail}",
                )
                if won:
                    _record(
                        run,
                        seq,
                        spec,
                        item,
                        started,
                        clock,
                        status=StepStatus.FAILED,
                        output=output_json,
                        error=str(detail),
                    )
                return
            won = _advance(
                run, seq, state=state, queue=rest, progress=progress, status=RunStatus.WAITING, pending_request=request
            )
            if won:
                _record(
                    run, seq, spec, item, started, clock, status=StepStatus.WAITING, output=output_json, request=request
                )
            else:
                transaction.set_rollback(True)  # another worker ran this step; drop our request
            return
        if spec.task and spec.task["human_input"]:
            won = _advance(
                run,
                seq,
                state=state,
                queue=rest,
                progress=progress,
                status=RunStatus.PENDING_HUMAN_INPUT,
                pending_task=_task_id(spec),
            )
            if won:
                _record(run, seq, spec, item, started, clock, status=StepStatus.WAITING, output=output_json)
                transaction.on_commit(lambda: notify_task_webhook(str(run.pk), _task_id(spec), output_json))
            return
        event = str(output) if spec.is_router else spec.name
        queue = rest + [
            {"method": name, "payload": output_json, "trigger": event}
            for name in listeners_for(methods, event, progress)
        ]
        status = RunStatus.RUNNING if queue else RunStatus.COMPLETED
        won = _advance(run, seq, state=state, queue=queue, progress=progress, status=status)
        if not won:
            return
        _record(run, seq, spec, item, started, clock, status=StepStatus.COMPLETED, output=output_json)
        notify_step_webhook(str(run.pk), spec.name, output_json)
        if status == RunStatus.RUNNING and chain:
            _enqueue_step(run.pk, seq + 1)
        elif status == RunStatus.COMPLETED:
            transaction.on_commit(lambda: notify_crew_webhook(str(run.pk)))


def _task_id(spec: MethodSpec) -> str:
    return spec.task["task_id"] if spec.task else spec.name


def _advance(run: FlowRun, seq: int, *, status: str, **fields: Any) -> bool:
    """Compare-and-set on `seq`: True for the one writer that moves the run forward."""
    values: dict[str, Any] = {"status": status, "seq": seq + 1, "updated_at": timezone.now()}
    for key, value in fields.items():
        values["and_progress" if key == "progress" else key] = value
    if status in (RunStatus.COMPLETED, RunStatus.FAILED):
        values["finished_at"] = timezone.now()
    won = bool(FlowRun.objects.filter(pk=run.pk, seq=seq, status=RunStatus.RUNNING).update(**values))
    if won:
        for key, value in values.items():
            setattr(run, key, value)
    return won


def _record(
    run: FlowRun,
    seq: int,
    spec: MethodSpec,
    item: dict[str, Any],
    started: Any,
    clock: float,
    *,
    status: str,
    output: Any = None,
    error: str = "",
    request: HITLRequest | None = None,
) -> None:
    FlowStep.objects.create(
        run=run,
        seq=seq,
        method_name=spec.name,
        trigger=str(item.get("trigger") or "")[:200],
        input=item.get("payload"),
        output=output,
        status=status,
        error=error,
        request=request,
        started_at=started,
        finished_at=timezone.now(),
        duration_ms=int((time.monotonic() - clock) * 1000),
    )


def _fail(run: FlowRun, seq: int, error: str) -> None:
    FlowRun.objects.filter(pk=run.pk, status__in=[RunStatus.RUNNING, RunStatus.WAITING]).update(
        status=RunStatus.FAILED,
        error=error[:5000],
        finished_at=timezone.now(),
        updated_at=timezone.now(),
        seq=F("seq") + 1,
    )
    transaction.on_commit(lambda: notify_crew_webhook(str(run.pk)))


def _finish(run: FlowRun, seq: int, status: str, outcome: str = "") -> None:
    FlowRun.objects.filter(pk=run.pk, seq=seq).update(
        status=status, outcome=outcome, finished_at=timezone.now(), updated_at=timezone.now(), seq=seq + 1, queue=[]
    )


# --- human steps -----------------------------------------------------------------------------------


def _options(run: FlowRun, step: HumanStep, state: dict[str, Any]) -> Any:
    """Choices from a list, a path into state, or `<step>.<path>` into an earlier step's output."""
    if step.options is None or isinstance(step.options, list):
        return step.options
    path = str(step.options)
    found = resolve_path(state, path)
    if found is not MISSING:
        return found
    method, _, rest = path.partition(".")
    previous = run.steps.filter(method_name=method, status=StepStatus.COMPLETED).order_by("-seq").first()
    if previous is not None:
        value = previous.output if not rest else resolve_path(previous.output, rest)
        if value is not MISSING:
            return value
    raise FlowError(f"options path {path!r} found nothing in the state or earlier step outputs", "invalid_options")


def _create_review(run: FlowRun, spec: MethodSpec, step: HumanStep, output: Any, state: dict[str, Any]) -> HITLRequest:
    from hitl import services

    mode = step.mode or ("emit" if step.emit else ("choices" if step.options is not None else "text"))
    content = output if isinstance(output, str) else f"```json\n{json.dumps(output, indent=2, default=str)}\n```"
    assign_to = step.assign_to
    if assign_to.startswith("state."):
        found = resolve_path(state, assign_to[len("state.") :])
        assign_to = found if isinstance(found, str) else ""
    data: dict[str, Any] = {
        "message": step.message,
        "content": content,
        "mode": mode,
        "flow_id": str(run.pk),
        "flow_name": run.flow_name,
        "method_name": spec.name,
        "state": state,
        "metadata": {**step.metadata, "flow_run_id": str(run.pk)},
        "channel": step.channel,
        "on_timeout": step.on_timeout,
        "editable": step.editable,
    }
    if mode == "emit":
        data["emit_options"] = list(step.emit)
    if mode == "choices":
        data.update(
            options=_options(run, step, state),
            label_path=step.label_path,
            value_path=step.value_path,
            description_path=step.description_path,
            multiple=step.multiple,
        )
    for key, value in (
        ("assign_to", assign_to),
        ("timeout", step.timeout),
        ("default_outcome", step.default_outcome),
        ("link_ttl", step.link_ttl),
    ):
        if value:
            data[key] = value
    return services.create_request(run.deployment, data, actor=f"flow:{run.flow_name}", source="flow")


def resume_after_request(request_id: Any) -> None:
    """The run waiting on `request_id` continues, once, with the answer (or its timeout)."""
    run = (
        FlowRun.objects.filter(pending_request_id=request_id, status=RunStatus.WAITING)
        .select_related("deployment")
        .first()
    )
    if run is None:
        return
    request = HITLRequest.objects.select_related("resolution").get(pk=request_id)
    if request.is_pending:
        return
    flow_cls = get_flow(run.flow_name)
    if flow_cls is None:
        return
    methods = flow_cls.methods()
    step = run.steps.filter(request_id=request_id).first()
    output = step.output if step else request.content
    resolution = getattr(request, "resolution", None)
    result = resolution.result if resolution is not None else empty_result(request)
    feedback = HumanFeedbackResult.from_result(result, output=output, status=request.status)
    progress = dict(run.and_progress or {})
    queue = list(run.queue)
    status, outcome, error = RunStatus.RUNNING, "", ""

    if request.status == Status.CANCELLED:
        status, error = RunStatus.FAILED, "the review request was cancelled"
    elif request.status == Status.TIMED_OUT and request.on_timeout == "fail":
        status, error = RunStatus.FAILED, f"nobody answered {request.method_name} in time (on_timeout=fail)"
    elif request.mode == Mode.APPROVAL and feedback.outcome == "rejected":
        # A rejection ends the run on purpose: completed, remaining steps skipped (not a failure).
        status, outcome, queue = RunStatus.COMPLETED, "rejected", []
    else:
        emitted = feedback.outcome if (request.mode == Mode.EMIT and feedback.outcome) else request.method_name
        payload = to_json(feedback)
        queue += [
            {"method": n, "payload": payload, "trigger": emitted} for n in listeners_for(methods, emitted, progress)
        ]
        if not queue:
            status = RunStatus.COMPLETED

    with transaction.atomic():
        values: dict[str, Any] = {
            "status": status,
            "queue": queue,
            "and_progress": progress,
            "pending_request": None,
            "seq": run.seq + 1,
            "outcome": outcome,
            "error": error,
            "updated_at": timezone.now(),
        }
        if status != RunStatus.RUNNING:
            values["finished_at"] = timezone.now()
        won = FlowRun.objects.filter(
            pk=run.pk, status=RunStatus.WAITING, pending_request_id=request_id, seq=run.seq
        ).update(**values)
        if not won:
            return
        if step is not None:
            FlowStep.objects.filter(pk=step.pk).update(
                status=StepStatus.COMPLETED, result=result, finished_at=timezone.now()
            )
        record_event(
            EventType.FLOW_RESUMED,
            actor="system",
            source=result.get("source") or "",
            target=run,
            deployment_id=run.deployment_id,
            data={
                "request_id": str(request_id),
                "request_status": request.status,
                "outcome": feedback.outcome,
                "run_status": status,
            },
        )
        if status == RunStatus.RUNNING:
            _enqueue_step(run.pk, run.seq + 1)
        else:
            transaction.on_commit(lambda: notify_crew_webhook(str(run.pk)))


# --- crew-style tasks ------------------------------------------------------------------------------


def resume_task(
    run: FlowRun, *, task_id: str, feedback: str, is_approve: bool, webhooks: dict[str, str], actor: str
) -> FlowRun:
    """`POST /deployments/{id}/resume/`: approve → continue; reject → run the task again with the feedback."""
    from flows import webhooks as run_webhooks

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
            webhooks=run_webhooks.check_urls(webhooks),
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


def notify_task_webhook(run_id: str, task_id: str, output: Any) -> None:
    from flows import webhooks

    webhooks.send(
        run_id,
        "taskWebhookUrl",
        {"execution_id": run_id, "task_id": task_id, "output": output, "status": "pending_human_input"},
    )


def notify_step_webhook(run_id: str, method: str, output: Any) -> None:
    from flows import webhooks

    webhooks.send(
        run_id, "stepWebhookUrl", {"execution_id": run_id, "step": method, "status": "completed", "output": output}
    )


def notify_crew_webhook(run_id: str) -> None:
    from flows import webhooks

    run = FlowRun.objects.filter(pk=run_id).first()
    if run is not None:
        webhooks.send(
            run_id,
            "crewWebhookUrl",
            {
                "execution_id": run_id,
                "status": run.status,
                "state": run.state,
                "outcome": run.outcome,
                "error": run.error,
            },
        )


def recover_stalled_runs(older_than_seconds: int | None = None) -> int:
    """Hand runs nobody touched for `HITL_FLOW_STALLED_AFTER` seconds to a worker again: a running run
    whose worker died mid-step (the ORM broker redelivers only after its `retry`, Redis never does) or
    between commit and enqueue, and a run still waiting on a request that resolved long ago (its resume
    task was lost the same ways). Safe to run any time: `run_step` ignores a `seq` that already moved on
    and `resume_after_request` is a compare-and-set too. At-least-once: a step whose worker died is run
    again from its start, so its body may run twice; its outcome is recorded once."""
    from django.conf import settings

    from hitl.channels.base import Event
    from hitl.lib.queue import enqueue

    if older_than_seconds is None:
        older_than_seconds = settings.HITL_FLOW_STALLED_AFTER
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stalled = list(FlowRun.objects.filter(status=RunStatus.RUNNING, updated_at__lt=cutoff).values_list("pk", "seq"))
    for run_id, seq in stalled:
        enqueue("flows.tasks.run_step", str(run_id), seq)
    orphaned = list(
        FlowRun.objects.filter(
            status=RunStatus.WAITING, updated_at__lt=cutoff, pending_request__resolved_at__lt=cutoff
        ).values_list("pending_request_id", "pending_request__status")
    )
    for request_id, request_status in orphaned:
        event = Event.RESOLVED_BY_STATUS.get(request_status, Event.RESPONDED)
        enqueue("hitl.tasks.notify_channel", "flows.channel.FlowChannel", str(request_id), event)
    return len(stalled) + len(orphaned)
