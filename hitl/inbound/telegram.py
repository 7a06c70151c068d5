"""Telegram's webhook (button presses) for one deployment's bot(s); the presses are processed by
`hitl.channels.telegram_channel.process_update` through the same resolve path as every channel."""

from __future__ import annotations

import json
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.models import Deployment
from audit.models import EventType
from audit.services import record_event
from hitl import services
from hitl.channels import telegram as telegram_channel
from hitl.lib.errors import HitlError, NotPending
from hitl.models import HITLRequest, Source


@csrf_exempt
@require_POST
def telegram_webhook(request: HttpRequest, deployment_id: int) -> HttpResponse:
    """Telegram's updates for one deployment's bot(s), authenticated by the secret-token header."""
    deployment = Deployment.objects.filter(pk=deployment_id).first()
    if deployment is None:
        raise Http404("No such deployment.")
    given = request.META.get(telegram_channel.SECRET_HEADER, "")
    if not telegram_channel.is_webhook_secret(deployment.pk, given):
        return JsonResponse({"detail": "Bad secret token.", "code": "forbidden"}, status=403)
    try:
        update = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply for the decoder
        return JsonResponse({"detail": "Expected a JSON update.", "code": "invalid"}, status=400)
    if not isinstance(update, dict):
        return JsonResponse({"detail": "Expected a JSON update.", "code": "invalid"}, status=400)
    return JsonResponse(process_update(deployment, update))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _reply(callback_id: str, text: str) -> dict[str, Any]:
    """Answering the webhook with a method call: Telegram shows `text` to whoever pressed."""
    return {"method": "answerCallbackQuery", "callback_query_id": callback_id, "text": text[:200]}


def process_update(deployment: Deployment, update: dict[str, Any]) -> dict[str, Any]:
    """Turn a button press into an answer through `respond_to_request`, with source "telegram".

    Authentic updates we do not act on (messages, presses on stale or foreign buttons) get an empty
    reply or a polite toast; nothing here raises for bad input.
    """
    query = update.get("callback_query")
    if not isinstance(query, dict):
        return {}
    callback_id = str(query.get("id", ""))
    parsed = telegram_channel.parse_button(str(query.get("data", "")))
    request = None
    if parsed is not None:
        request = (
            HITLRequest.objects.select_related("deployment", "assigned_rule")
            .filter(pk=parsed[0], deployment=deployment)
            .first()
        )
    if parsed is None or request is None:
        return _reply(callback_id, "This button is not valid any more.")
    sender = _dict(query.get("from"))
    username = sender.get("username")
    responder = f"telegram:@{username}" if username else f"telegram:{sender.get('id', 'unknown')}"
    chat = _dict(_dict(query.get("message")).get("chat"))
    chat_id = str(chat.get("id", ""))
    target = telegram_channel.target_for(request)
    if not telegram_channel.press_from_chat(request, target.chat_id if target else "", chat):
        record_event(
            EventType.RESPONSE_REFUSED,
            actor=responder,
            source=Source.TELEGRAM,
            target=request,
            data={"reason": "wrong_chat", "chat_id": chat_id},
        )
        return _reply(callback_id, "Answers to this request are not accepted from this chat.")
    choices = telegram_channel.options(request)
    if parsed[1] >= len(choices):
        return _reply(callback_id, "This button is not valid any more.")
    label, value = choices[parsed[1]]
    answer = services.Answer(choice_id=value) if request.mode == "choices" else services.Answer(outcome=value)
    if request.has_pool and request.is_pending:
        # Several approvers (SPEC §13): the press is the decision of the approver this account is linked
        # to; the shared path then refuses the requester, a second decision, or anyone not in the pool.
        try:
            responder = services.telegram_approver(request, sender, actor=responder)
        except HitlError as exc:
            return _reply(callback_id, f"Not recorded: {exc.detail}")
    try:
        services.respond_to_request(request.pk, answer, responder=responder, source=Source.TELEGRAM)
    except NotPending as exc:
        return _reply(callback_id, exc.detail)
    except HitlError as exc:
        return _reply(callback_id, f"Not recorded: {exc.detail}")
    return _reply(callback_id, f"Recorded: {label}. Thank you!")
