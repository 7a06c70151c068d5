"""Running a flow: kickoff, each step exactly once (a compare-and-set on `seq`), and stalled runs."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Deployment
from audit.models import EventType
from audit.services import record_event
from flows.engine.crew import _task_id
from flows.engine.human import _create_review
from flows.engine.queue import _enqueue_step, from_json, listeners_for, to_json
from flows.errors import FlowError
from flows.models import DeploymentFlow, FlowRun, FlowStep, RunStatus, StepStatus
from flows.registry import get_flow
from flows.runtime import HumanFeedbackResult, MethodSpec
from flows.webhooks import check_urls, notify_crew_webhook, notify_step_webhook, notify_task_webhook
from hitl.channels.base import Event
from hitl.lib import crypto
from hitl.lib.queue import enqueue
from hitl.lib.webhook_signing import generate_secret
from hitl.models import HITLRequest

logger = logging.getLogger(__name__)


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
    urls = check_urls(webhooks or {})
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
        asked = methods.get(argument.method_name)
        if asked is not None and asked.human is not None:
            argument.form = asked.human.typed_form(argument.form)  # a pydantic schema: its instance
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


# --- recovery --------------------------------------------------------------------------------------


def recover_stalled_runs(older_than_seconds: int | None = None) -> int:
    """Hand runs nobody touched for `HITL_FLOW_STALLED_AFTER` seconds to a worker again: a running run
    whose worker died mid-step (the ORM broker redelivers only after its `retry`, Redis never does) or
    between commit and enqueue, and a run still waiting on a request that resolved long ago (its resume
    task was lost the same ways). Safe to run any time: `run_step` ignores a `seq` that already moved on
    and `resume_after_request` is a compare-and-set too. At-least-once: a step whose worker died is run
    again from its start, so its body may run twice; its outcome is recorded once."""
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
