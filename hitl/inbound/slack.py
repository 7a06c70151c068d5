"""Slack's interactivity requests (button presses, modal submissions) for one deployment's app(s).

The view authenticates (slack-sdk's `SignatureVerifier`: the `v0` HMAC over `v0:{timestamp}:{body}` with
the app's signing secret, compared in constant time; timestamps more than 5 minutes away refused; the
same signed request twice refused) and acknowledges at once: Slack wants its 200 within 3 seconds. The
answer itself is processed by the django-q2 task `hitl.tasks.process_slack_interaction` →
`process_interaction` here, which identifies the presser by their Slack account's verified email
(`users.info`), requires it to be the assignee, and answers through `services.respond_to_request` with
source "slack". Every refusal is audited (`response.refused` with a reason) and explained to the presser
in an ephemeral message.

The one Slack call made inside the web request is `views.open`: a modal must be opened with the press's
`trigger_id` within 3 seconds, which a queued task cannot promise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from datetime import timedelta
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from slack_sdk.signature import SignatureVerifier

from accounts.models import Deployment
from audit.models import EventType
from audit.services import record_event
from hitl import services
from hitl.channels import slack
from hitl.channels.base import ChannelError
from hitl.lib.errors import HitlError, NotPending
from hitl.lib.links import magic_link_url
from hitl.lib.queue import enqueue
from hitl.models import HITLRequest, Mode, Source, ThrottleCounter
from hitl.services import throttle

logger = logging.getLogger(__name__)

TASK = "hitl.tasks.process_slack_interaction"
WINDOW_SECONDS = 300  # Slack's own advice: refuse requests more than 5 minutes old
SEEN_PREFIX = "slack.seen:"
# Unauthenticated posts are audited too, but at most this many per deployment and minute, so a flood of
# forgeries cannot fill the audit chain (the rest are logged).
REFUSED_AUDIT_LIMIT = 20
MAX_BODY = 256 * 1024


def _refused(deployment: Deployment, code: str, detail: str) -> JsonResponse:
    logger.warning("slack interactions for deployment %s refused: %s", deployment.pk, code)
    if throttle.allow(f"slack.refused:{deployment.pk}", limit=REFUSED_AUDIT_LIMIT, window_seconds=60):
        record_event(
            EventType.RESPONSE_REFUSED,
            actor="slack",
            source=Source.SLACK,
            target=deployment,
            deployment_id=deployment.pk,
            data={"reason": code},
        )
    return JsonResponse({"detail": detail, "code": code}, status=401)


def authenticate(deployment: Deployment, request: HttpRequest) -> tuple[slack.App | None, str, str]:
    """The app whose signing secret signed this request, or (None, code, detail)."""
    timestamp = request.META.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
    signature = request.META.get("HTTP_X_SLACK_SIGNATURE", "")
    if not timestamp.isdigit() or len(timestamp) > 12 or not signature.startswith("v0="):
        return None, "bad_signature", "Missing or malformed X-Slack-Request-Timestamp / X-Slack-Signature."
    if abs(time.time() - int(timestamp)) > WINDOW_SECONDS:
        return None, "stale_timestamp", "The request's timestamp is more than 5 minutes away from ours."
    try:
        body = request.body.decode("utf-8")
    except UnicodeDecodeError:
        return None, "bad_signature", "The body is not UTF-8."
    app = next(
        (
            candidate
            for candidate in slack.apps_of(deployment)
            if SignatureVerifier(candidate.signing_secret).is_valid(body, timestamp, signature)
        ),
        None,
    )
    if app is None:
        return None, "bad_signature", "The signature does not verify with this deployment's Slack signing secret."
    if not _first_sighting(deployment, timestamp, signature):
        return None, "replayed", "This request was already received."
    return app, "", ""


def _first_sighting(deployment: Deployment, timestamp: str, signature: str) -> bool:
    """Remember each signed request for the window it could be replayed in (a row per request in the
    throttle table; older ones are dropped as new ones come)."""
    digest = hashlib.sha256(signature.encode()).hexdigest()[:40]
    key = f"{SEEN_PREFIX}{deployment.pk}:{timestamp}:{digest}"
    ThrottleCounter.objects.filter(
        key__startswith=SEEN_PREFIX, window_start__lt=timezone.now() - timedelta(seconds=2 * WINDOW_SECONDS)
    ).delete()
    return throttle.allow(key, limit=1, window_seconds=2 * WINDOW_SECONDS)


@csrf_exempt
@require_POST
def slack_interactions(request: HttpRequest, deployment_id: int) -> HttpResponse:
    """Slack's interactivity request URL for one deployment: authenticate, acknowledge, queue the rest."""
    deployment = Deployment.objects.filter(pk=deployment_id).first()
    if deployment is None:
        raise Http404("No such deployment.")
    if len(request.body) > MAX_BODY:
        return JsonResponse({"detail": "Too large.", "code": "invalid"}, status=413)
    app, code, detail = authenticate(deployment, request)
    if app is None:
        return _refused(deployment, code, detail)
    try:
        payload = json.loads(request.POST.get("payload", ""))
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return JsonResponse({"detail": "Expected a form field `payload` with JSON.", "code": "invalid"}, status=400)
    kind = payload.get("type")
    if kind == "block_actions":
        action = _first_action(payload)
        action_id = str(action.get("action_id", ""))
        if action_id in (slack.ACTION_COMMENT, slack.ACTION_TEXT) and _open_modal(deployment, app, payload, action):
            return HttpResponse(status=200)
        if action_id.startswith(slack.ACTION_OPTION) or action_id in (
            slack.ACTION_LINK,
            slack.ACTION_COMMENT,
            slack.ACTION_TEXT,
        ):
            enqueue(TASK, deployment.pk, app.origin, payload)
    elif kind == "view_submission" and _dict(payload.get("view")).get("callback_id") == slack.MODAL_CALLBACK:
        enqueue(TASK, deployment.pk, app.origin, payload)
    # Anything else authentic (a closed modal, a shortcut) is acknowledged and ignored. An empty 200
    # also closes a submitted modal: the outcome comes as an ephemeral message.
    return HttpResponse(status=200)


def _dict(value: Any) -> dict[str, Any]:
    """Slack's payloads are signed, not trusted to be well-formed: a missing or odd part reads as empty."""
    return value if isinstance(value, dict) else {}


def _first_action(payload: dict[str, Any]) -> dict[str, Any]:
    actions = payload.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else None
    return first if isinstance(first, dict) else {}


def _request_for(deployment: Deployment, request_hex: str) -> HITLRequest | None:
    try:
        rid = uuid.UUID(hex=request_hex)
    except (ValueError, TypeError):
        return None
    return (
        HITLRequest.objects.select_related("deployment", "assigned_rule").filter(pk=rid, deployment=deployment).first()
    )


def _open_modal(deployment: Deployment, app: slack.App, payload: dict[str, Any], action: dict[str, Any]) -> bool:
    """Open the comment / text modal now (True), or leave the press to the task (False), which tells the
    presser why not (a stale button, another channel, a request no longer pending)."""
    request = _request_for(deployment, str(action.get("value", "")))
    channel_id = str(_dict(payload.get("channel")).get("id", ""))
    trigger_id = str(payload.get("trigger_id", ""))
    if request is None or not request.is_pending or not trigger_id or _wrong_place(request, app, channel_id):
        return False
    kind = slack.MODAL_TEXT if action.get("action_id") == slack.ACTION_TEXT else slack.MODAL_COMMENT
    try:
        slack.open_modal(app, trigger_id, request, kind, channel_id)
    except ChannelError as exc:
        logger.warning("slack views.open for %s failed: %s", request.pk, exc.detail)
    return True


def _wrong_place(request: HITLRequest, app: slack.App, channel_id: str) -> bool:
    """The press did not come from the app and channel this request was posted with."""
    target = slack.target_for(request)
    return target is None or target.app.origin != app.origin or channel_id != target.channel_id


# --- on the worker ----------------------------------------------------------------------------------


def process_interaction(deployment_id: int, origin: str, payload: dict[str, Any]) -> None:
    """Turn an authenticated press or modal submission into an answer, or a refusal the presser is told
    about. Idempotent: a second run of the same press finds the request answered and says so."""
    deployment = Deployment.objects.filter(pk=deployment_id).first()
    app = next((a for a in slack.apps_of(deployment) if a.origin == origin), None) if deployment else None
    if deployment is None or app is None:
        logger.warning("slack interaction for deployment %s: the app %s is gone", deployment_id, origin)
        return
    user_id = str(_dict(payload.get("user")).get("id", ""))
    kind, request_hex, channel_id, values = _read(payload)
    request = _request_for(deployment, request_hex)

    def reply(text: str) -> None:
        if not channel_id or not user_id:
            return
        try:
            slack.post_ephemeral(app, channel_id, user_id, text)
        except ChannelError as exc:
            logger.warning("slack chat.postEphemeral failed: %s", exc.detail)

    if request is None:
        reply("This button is not valid any more.")
        return
    actor = f"slack:{user_id or 'unknown'}"
    if _wrong_place(request, app, channel_id):
        _refuse(request, actor, "wrong_channel", channel_id=channel_id)
        reply("Answers to this request are not accepted from this channel.")
        return
    if not request.is_pending:
        # Who pressed does not matter any more: the shared path refuses (and audits) a late answer.
        _answer(request, services.Answer(outcome="late"), responder=actor, label="", reply=reply)
        return
    try:
        email = slack.verified_email(app, user_id)
    except slack.Unidentified as exc:
        _refuse(request, actor, exc.reason)
        reply(f"Not recorded: {exc.message}")
        return
    except ChannelError as exc:
        logger.warning("slack users.info failed: %s", exc.detail)
        reply("Not recorded: Slack could not tell us who you are just now; please try again.")
        return
    if request.has_pool:
        # Several approvers (SPEC §13): the presser's verified email is the approver; the shared path
        # refuses (and audits) the requester, anyone without a seat and a second decision.
        if kind == slack.ACTION_LINK:
            seat = services.capability_for(request, email)
            if seat.version < 0:
                reason = "self_approval" if email.lower() == request.requested_by.lower() else "not_an_approver"
                _refuse(request, actor, reason, email=email.lower())
                reply(f"Not recorded: {email} is not one of this request's approvers.")
                return
            link = magic_link_url(request, seat.email, version=seat.version)
            reply(f"Your private link to the review page (do not share it): {link}")
            return
    elif email.lower() != request.assigned_to_email.lower():
        _refuse(request, actor, "not_assignee", email=email.lower())
        reply(
            f"Not recorded: this request is for {request.assigned_to_email}, and your Slack account's email is {email}."
        )
        return
    if kind == slack.ACTION_LINK:
        reply(f"Your private link to the review page (do not share it): {magic_link_url(request)}")
        return
    answer, label = _answer_from(request, kind, values)
    if answer is None:
        reply("This button is not valid any more.")
        return
    _answer(request, answer, responder=email.lower(), label=label, reply=reply)


def _read(payload: dict[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
    """(what was pressed, the request's hex id, the channel, the values) of a press or submission."""
    if payload.get("type") == "view_submission":
        view = _dict(payload.get("view"))
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except (ValueError, TypeError):
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        values = _dict(_dict(view.get("state")).get("values"))
        return f"modal:{meta.get('k', '')}", str(meta.get("r", "")), str(meta.get("c", "")), values
    action = _first_action(payload)
    action_id = str(action.get("action_id", ""))
    value = str(action.get("value", ""))
    channel_id = str(_dict(payload.get("channel")).get("id", ""))
    if action_id.startswith(slack.ACTION_OPTION):
        request_hex, _, index = value.partition(":")
        return slack.ACTION_OPTION, request_hex, channel_id, {"index": index}
    return action_id, value, channel_id, {}


def _field(values: dict[str, Any], block: str) -> dict[str, Any]:
    return _dict(_dict(values.get(block)).get("value"))


def _answer_from(request: HITLRequest, kind: str, values: dict[str, Any]) -> tuple[services.Answer | None, str]:
    choices = slack.options(request)

    def by_index(index: Any) -> tuple[services.Answer | None, str]:
        text = str(index)
        if not text.isdigit() or int(text) >= len(choices):
            return None, ""
        label, value = choices[int(text)]
        if request.mode == Mode.CHOICES:
            return services.Answer(choice_id=value), label
        return services.Answer(outcome=value), label

    if kind == slack.ACTION_OPTION:
        return by_index(values.get("index"))
    if kind == f"modal:{slack.MODAL_COMMENT}":
        answer, label = by_index(_dict(_field(values, "answer").get("selected_option")).get("value"))
        if answer is not None:
            answer.feedback = str(_field(values, "comment").get("value") or "")[: slack.MAX_COMMENT]
        return answer, label
    if kind == f"modal:{slack.MODAL_TEXT}" and request.mode == Mode.TEXT:
        text = str(_field(values, "text").get("value") or "")[: slack.MAX_COMMENT]
        return services.Answer(text=text), "your answer"
    return None, ""


def _answer(request: HITLRequest, answer: services.Answer, *, responder: str, label: str, reply: Any) -> None:
    try:
        services.respond_to_request(request.pk, answer, responder=responder, source=Source.SLACK)
    except NotPending as exc:
        reply(exc.detail)
    except HitlError as exc:
        reply(f"Not recorded: {exc.detail}")
    else:
        reply(f"Recorded: {label}. Thank you!")


def _refuse(request: HITLRequest, actor: str, reason: str, **data: Any) -> None:
    record_event(
        EventType.RESPONSE_REFUSED, actor=actor, source=Source.SLACK, target=request, data={"reason": reason, **data}
    )
