"""The Telegram channel (SPEC §4): a bot posts the question to a configured chat with inline buttons for
the emit/approval options (and single choices) plus the magic link; a button press comes back on our
webhook and answers through the shared path, but only from the chat the request was posted to.

Configuration: a bot token and a chat per deployment, either of which a routing rule can override for
the requests it assigns. Tokens are encrypted at rest (`hitl.lib.crypto`). Every call goes through the
egress seam (`hitl.lib.http`) to `HITL_TELEGRAM_API_BASE`, so tests talk to a fake on 127.0.0.1.

Webhook authentication: Telegram sends the `secret_token` given to setWebhook in the
`X-Telegram-Bot-Api-Secret-Token` header; ours is derived from SECRET_KEY and the deployment, so
nothing else needs storing. Button data carries a short MAC too, so a forged callback cannot name
another request or option.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from audit.models import EventType
from audit.services import record_event
from hitl.channels.base import Channel, ChannelError, Event, record_failure
from hitl.lib import crypto, http, signing
from hitl.lib.links import absolute, magic_link_url

if TYPE_CHECKING:
    from accounts.models import Deployment
    from hitl.models import HITLRequest, RoutingRule

logger = logging.getLogger(__name__)

TIMEOUT = 15.0
MAX_TEXT = 4096  # Telegram's limit for a message
MAX_CONTENT = 1500
MAX_BUTTON_CHOICES = 8
TOKEN_RE = re.compile(r"^\d{3,20}:[A-Za-z0-9_-]{30,100}$")
CHAT_RE = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$")
SECRET_HEADER = "HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN"
SEND_EVENTS = frozenset({Event.NEW_REQUEST, Event.RESEND, Event.REMINDER, Event.REASSIGNED})
CLOSE_EVENTS = frozenset(Event.RESOLVED_BY_STATUS.values())
NOT_CONFIGURED = "Telegram is not configured for this request: set a bot token and a chat on its deployment or rule."


@dataclass(frozen=True)
class Target:
    token: str
    chat_id: str


def target_for(request: HITLRequest) -> Target | None:
    """The bot and chat for a request: the assigning rule's, else the deployment's (each separately)."""
    return target_of(request.deployment, request.assigned_rule)


def target_of(deployment: Deployment, rule: RoutingRule | None) -> Target | None:
    token_ct = (rule.telegram_bot_token if rule else "") or deployment.telegram_bot_token
    chat = (rule.telegram_chat_id if rule else "") or deployment.telegram_chat_id
    if not token_ct or not chat:
        return None
    return Target(crypto.decrypt(token_ct), chat)


def press_from_chat(request: HITLRequest, configured: str, chat: dict[str, Any]) -> bool:
    """Whether a button press's chat is the request's configured one. Presses carry the numeric chat
    id; a chat configured as `@channelname` matches by the username Telegram sends with it, or by the
    numeric id Telegram gave when we posted this request's message there."""
    from hitl.models import TelegramMessage

    chat_id = str(chat.get("id", ""))
    if not configured or not chat_id:
        return False
    if chat_id == configured:
        return True
    if not configured.startswith("@"):
        return False
    username = str(chat.get("username") or "")
    if username and username.lower() == configured[1:].lower():
        return True
    return TelegramMessage.objects.filter(request=request, chat_id=chat_id).exists()


def webhook_secret(deployment_id: int, secret: str | None = None) -> str:
    """What setWebhook's secret_token is for this deployment (1-256 of A-Z a-z 0-9 _ -)."""
    secret = settings.SECRET_KEY if secret is None else secret
    key = f"hitl.telegram.webhook:{secret}".encode()
    return hmac.new(key, str(deployment_id).encode(), hashlib.sha256).hexdigest()


def is_webhook_secret(deployment_id: int, given: str) -> bool:
    """Whether `given` is the secret under SECRET_KEY or any of SECRET_KEY_FALLBACKS: Telegram keeps
    sending the secret it was registered with until `setWebhook` runs again after a rotation."""
    return any(
        hmac.compare_digest(given.encode(), webhook_secret(deployment_id, secret).encode())
        for secret in signing.secret_keys()
    )


def webhook_url(deployment_id: int) -> str:
    return absolute(reverse("hitl:telegram-webhook", args=[deployment_id]))


# --- buttons ---------------------------------------------------------------------------------------


def options(request: HITLRequest) -> list[tuple[str, str]]:
    """(label, answer value) per button: emit options, approve/reject, or single choices (a few)."""
    if request.mode == "approval":
        return [("✅ Approve", "approved"), ("❌ Reject", "rejected")]
    if request.mode == "emit":
        return [(str(o).replace("_", " ").capitalize(), str(o)) for o in request.emit_options]
    if request.mode == "choices" and not request.multiple and len(request.options) <= MAX_BUTTON_CHOICES:
        return [(str(o["label"])[:60], str(o["id"])) for o in request.options]
    return []  # text mode, multiple choices: answered on the review page


def _button_mac(request_id: str, index: int, secret: str | None = None) -> str:
    secret = settings.SECRET_KEY if secret is None else secret
    key = f"hitl.telegram.button:{secret}".encode()
    digest = hmac.new(key, f"{request_id}:{index}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower()[:10]


def button_data(request_id: Any, index: int) -> str:
    """`a:<request hex>:<option index>:<mac>`, 48 bytes at most (Telegram allows 64)."""
    rid = uuid.UUID(str(request_id)).hex
    return f"a:{rid}:{index}:{_button_mac(rid, index)}"


def parse_button(data: str) -> tuple[uuid.UUID, int] | None:
    parts = (data or "").split(":")
    if len(parts) != 4 or parts[0] != "a" or not parts[2].isdigit():
        return None
    try:
        rid = uuid.UUID(hex=parts[1])
    except ValueError:
        return None
    index = int(parts[2])
    # Buttons already sent carry a MAC under the key of their day: accept SECRET_KEY_FALLBACKS too.
    if not any(hmac.compare_digest(_button_mac(rid.hex, index, s), parts[3]) for s in signing.secret_keys()):
        return None
    return rid, index


# --- outbound --------------------------------------------------------------------------------------


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fit(raw: str, budget: int) -> str:
    """`raw` escaped, cut (before escaping, so no entity is split) to at most `budget` characters."""
    escaped = _escape(raw)
    if len(escaped) <= budget:
        return escaped
    cut = raw[: max(budget - 1, 0)]
    while cut and len(_escape(cut)) + 1 > budget:
        cut = cut[: -max(1, (len(_escape(cut)) + 1 - budget) // 5)]
    return _escape(cut) + "…" if budget > 0 else ""


def message_text(request: HITLRequest, *, footer: str = "") -> str:
    """HTML (Telegram's subset): the question, the start of the content, who it is for, the link, or
    (once resolved) the footer saying how it ended. Within Telegram's 4096 characters the footer and the
    assignee line always fit whole: only the question and the content are shortened, never mid-tag."""
    tail = [f"For {_escape(request.assigned_to_email)} · {_escape(request.deployment.name)}"]
    opener = "Open the form" if request.mode == "form" else "Open the review page"  # no in-chat forms (§14)
    tail.append(footer or f'<a href="{_escape(magic_link_url(request))}">{opener}</a>')
    budget = MAX_TEXT - len("\n\n".join(tail)) - len("\n\n") * 2 - len("<b></b><pre></pre>")
    question = _fit(request.message, max(budget // 2, budget - MAX_CONTENT) if request.content else budget)
    parts = [f"<b>{question}</b>"]
    if request.content:
        content = request.content if len(request.content) <= MAX_CONTENT else request.content[:MAX_CONTENT] + "…"
        parts.append(f"<pre>{_fit(content, budget - len(question))}</pre>")
    return "\n\n".join(parts + tail)


def call(token: str, method: str, payload: dict[str, Any]) -> Any:
    """One Bot API call; the `result`, or ChannelError with a detail that never contains the token."""
    url = f"{settings.HITL_TELEGRAM_API_BASE}/bot{token}/{method}"
    try:
        response = http.post_json(url, payload, timeout=TIMEOUT)
    except http.EgressError as exc:
        raise ChannelError(
            f"Telegram {method}: {exc.detail}".replace(token, "<token>"), retryable=exc.retryable
        ) from None
    try:
        body = json.loads(response.body or b"{}")
    except ValueError:
        body = {}
    if not response.ok or not body.get("ok"):
        description = str(body.get("description") or response.excerpt(200)).replace(token, "<token>")
        raise ChannelError(
            f"Telegram {method}: HTTP {response.status}: {description}", retryable=response.status >= 500
        )
    return body.get("result")


class TelegramChannel(Channel):
    name = "telegram"
    events = SEND_EVENTS | CLOSE_EVENTS

    def wants(self, request: HITLRequest, event: str) -> bool:
        from hitl.models import Channel as ChannelChoice
        from hitl.models import TelegramMessage

        if event in SEND_EVENTS:
            # Even without a bot and chat: `send` then records the failure instead of staying silent.
            return request.channel == ChannelChoice.TELEGRAM
        if event in CLOSE_EVENTS:
            # Only telegram requests are ever sent (above), so only they can have a message to close.
            return (
                request.channel == ChannelChoice.TELEGRAM
                and TelegramMessage.objects.filter(request=request, closed_at__isnull=True).exists()
            )
        return False

    def notify(self, request: HITLRequest, event: str) -> None:
        if event in CLOSE_EVENTS:
            self.close(request)
        elif request.is_pending:
            self.send(request, event)

    def send(self, request: HITLRequest, event: str) -> None:
        from hitl.models import HITLRequest as Model
        from hitl.models import TelegramMessage

        target = target_for(request)
        to = f"telegram:{target.chat_id}" if target else "telegram"
        try:
            if target is None:
                # Checked at create (channel_unavailable); still possible if the settings were removed since.
                raise ChannelError(NOT_CONFIGURED)
            result = self._send(request, target)
        except ChannelError as exc:
            record_failure(request, "telegram", event, exc.detail, to=to)
            exc.recorded = True
            raise
        message_id = int((result or {}).get("message_id") or 0)
        # Stored as Telegram resolved it: a chat configured as `@channelname` comes back with its numeric
        # id, which is what button presses carry (see `press_from_chat`).
        sent_chat = str(((result or {}).get("chat") or {}).get("id") or target.chat_id)
        TelegramMessage.objects.create(request=request, chat_id=sent_chat, message_id=message_id, event=event)
        Model.objects.filter(pk=request.pk).update(notified_at=timezone.now(), notification_error="")
        record_event(
            EventType.NOTIFICATION_SENT,
            target=request,
            source="telegram",
            data={"to": to, "event": event, "message_id": message_id},
        )

    def _send(self, request: HITLRequest, target: Target) -> Any:
        payload: dict[str, Any] = {
            "chat_id": target.chat_id,
            "text": message_text(request),
            "parse_mode": "HTML",
            "disable_web_page_preview": True,
        }
        buttons = [
            {"text": label, "callback_data": button_data(request.pk, index)}
            for index, (label, _) in enumerate(options(request))
        ]
        if buttons:
            payload["reply_markup"] = {"inline_keyboard": [buttons[i : i + 2] for i in range(0, len(buttons), 2)]}
        return call(target.token, "sendMessage", payload)

    def close(self, request: HITLRequest) -> None:
        """Take the buttons off every message about a resolved request and say how it ended."""
        from hitl.models import Resolution, TelegramMessage
        from hitl.results import answer_summary

        resolution = Resolution.objects.filter(request=request).first()
        if resolution is None:
            return
        summary = answer_summary(resolution.result) or resolution.get_status_display()
        footer = f"✔ {_escape(resolution.get_status_display())}: <b>{_escape(summary)}</b> — " + _escape(
            f"{resolution.responder or resolution.source} via {resolution.source}"
        )
        target = target_for(request)
        if target is None:
            return
        for sent in TelegramMessage.objects.filter(request=request, closed_at__isnull=True):
            # Claim it first: a duplicate task finds nothing left to close.
            if not TelegramMessage.objects.filter(pk=sent.pk, closed_at__isnull=True).update(closed_at=timezone.now()):
                continue
            call(
                target.token,
                "editMessageText",
                {
                    "chat_id": sent.chat_id,
                    "message_id": sent.message_id,
                    "text": message_text(request, footer=footer),
                    "parse_mode": "HTML",
                    "disable_web_page_preview": True,
                },
            )


def register_webhook(deployment: Deployment) -> str:
    """setWebhook for the deployment's bot (and every rule's own bot) → our endpoint, with the secret."""
    from hitl.models import RoutingRule

    tokens = {crypto.decrypt(deployment.telegram_bot_token)} if deployment.telegram_bot_token else set()
    for rule in RoutingRule.objects.filter(deployment=deployment).exclude(telegram_bot_token=""):
        tokens.add(crypto.decrypt(rule.telegram_bot_token))
    if not tokens:
        raise ChannelError("No Telegram bot token is configured for this deployment or its rules.")
    url = webhook_url(deployment.pk)
    for token in tokens:
        call(
            token,
            "setWebhook",
            {"url": url, "secret_token": webhook_secret(deployment.pk), "allowed_updates": ["callback_query"]},
        )
    return url
