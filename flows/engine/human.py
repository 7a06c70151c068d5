"""Human steps: the review request a step opens, and the run continuing once that request resolves."""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.models import EventType
from audit.services import record_event
from flows.engine.queue import _enqueue_step, listeners_for, to_json
from flows.errors import FlowError
from flows.models import FlowRun, FlowStep, RunStatus, StepStatus
from flows.registry import get_flow
from flows.runtime import HumanFeedbackResult, HumanStep, MethodSpec
from flows.webhooks import notify_crew_webhook, notify_step_webhook
from hitl import services
from hitl.lib.paths import MISSING, resolve_path
from hitl.models import HITLRequest, Mode, Status
from hitl.results import empty_result


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
    mode = step.mode or ("emit" if step.emit else ("choices" if step.options is not None else "text"))
    if not step.mode and step.schema is not None and not step.emit and step.options is None:
        mode = "form"
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
        ("policy", step.policy),
        ("required", step.required),
        ("requested_by", step.requested_by),
    ):
        if value:
            data[key] = value
    if mode == "form":
        data.update(schema=step.form_schema(), initial=step.form_initial())
    if step.approvers:
        data["approvers"] = list(step.approvers)
        data.pop("assign_to", None)
    if not step.veto:
        data["veto"] = False
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
            # A human step is a step like the others: its webhook fires when it completes, answer included.
            notify_step_webhook(str(run.pk), step.method_name, step.output, result)
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
