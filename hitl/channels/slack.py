"""The Slack channel (SPEC §16): the app's bot posts the request to a channel as a Block Kit message (the
question, the start of the content, who may answer, a link to the review page, and a button per emit
option, Approve/Reject, or up to 5 single choices); "With a comment…" and text mode open a modal. When the
request resolves, by any channel, the message is updated to say who answered and how, without buttons.
Presses come back on `POST /slack/<deployment id>/interactions/` (hitl.inbound.slack).

Configuration: a Slack app per deployment (bot token + signing secret, which belong together) and a
channel; a routing rule can bring its own app and/or channel for the requests it assigns. Secrets are
encrypted at rest (`hitl.lib.crypto`).

slack-sdk does the Slack parts: Block Kit models, the Web API client and its errors, and (inbound) the
signature check. Its `WebClient` sends with `urllib.request` and has no public transport hook, so
`EgressWebClient` replaces the one method that opens the connection with our egress seam
(`hitl.lib.http`): the same timeouts, address checks and allow-list as every other outbound call, to
`HITL_SLACK_API_BASE`. tests/hitl/channels/test_slack.py proves every call goes through it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.request import Request

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from audit.models import EventType
from audit.services import record_event
from hitl.channels.base import Channel, ChannelError, Event
from hitl.lib import crypto, http
from hitl.lib.errors import HitlError
from hitl.lib.links import absolute

if TYPE_CHECKING:
    from accounts.models import Deployment
    from hitl.models import HITLRequest, RoutingRule

logger = logging.getLogger(__name__)

TIMEOUT = 15.0
# views.open must use the press's trigger_id within 3 seconds, and runs inside Slack's 3-second ack.
MODAL_TIMEOUT = 2.0
MAX_BODY = 1024 * 1024
MAX_CONTENT = 1500
MAX_QUESTION = 2900  # a section's text is at most 3000 characters
MAX_BUTTON_CHOICES = 5
MAX_ACTIONS_PER_BLOCK = 25
MAX_COMMENT = 3000
TOKEN_RE = re.compile(r"^xoxb-[A-Za-z0-9-]{10,250}$")
SECRET_RE = re.compile(r"^[A-Za-z0-9]{16,128}$")
CHANNEL_RE = re.compile(r"^[CG][A-Z0-9]{6,30}$")
SEND_EVENTS = frozenset({Event.NEW_REQUEST, Event.RESEND, Event.REMINDER, Event.REASSIGNED})
CLOSE_EVENTS = frozenset(Event.RESOLVED_BY_STATUS.values())

# action_ids of our buttons; the button's value names the request (and the option).
ACTION_OPTION = "hitl_option"  # hitl_option_<index>, value "<request hex>:<index>"
ACTION_COMMENT = "hitl_comment"  # opens the modal: an option and a comment
ACTION_TEXT = "hitl_text"  # text mode: opens the modal with a text box
ACTION_LINK = "hitl_link"  # the assignee gets their magic link, privately
MODAL_CALLBACK = "hitl_answer"
MODAL_COMMENT = "comment"
MODAL_TEXT = "text"


@dataclass(frozen=True)
class App:
    """One Slack app: its bot token and signing secret travel together. `origin` says whose it is
    ("deployment" or "rule:<id>"), so a press verified with one app's secret only counts for requests
    posted by that app."""

    origin: str
    token: str = ""
    signing_secret: str = ""


@dataclass(frozen=True)
class Target:
    app: App
    channel_id: str


def _app_of(obj: Any, origin: str) -> App | None:
    if not obj.slack_bot_token or not obj.slack_signing_secret:
        return None
    return App(origin, crypto.decrypt(obj.slack_bot_token), crypto.decrypt(obj.slack_signing_secret))


def target_for_config(deployment: Deployment, rule: RoutingRule | None) -> Target | None:
    """The app and channel for requests a rule assigns: the rule's own app and channel, each falling
    back to the deployment's. None when either is missing."""
    app = (_app_of(rule, f"rule:{rule.pk}") if rule else None) or _app_of(deployment, "deployment")
    channel = (rule.slack_channel_id if rule else "") or deployment.slack_channel_id
    if app is None or not channel:
        return None
    return Target(app, channel)


def target_for(request: HITLRequest) -> Target | None:
    return target_for_config(request.deployment, request.assigned_rule)


def require_configured(deployment: Deployment, rule: RoutingRule | None) -> None:
    """`channel: "slack"` is refused at create time when nothing would post the request."""
    if target_for_config(deployment, rule) is None:
        raise HitlError(
            "Slack is not configured for this deployment (or the routing rule that assigns this request): "
            "set the Slack app's bot token, signing secret and channel in the admin or with "
            "manage.py configure_slack.",
            code="channel_unavailable",
        )


def apps_of(deployment: Deployment) -> list[App]:
    """Every Slack app that may sign a post to this deployment's interactions URL."""
    from hitl.models import RoutingRule

    apps = [app for app in [_app_of(deployment, "deployment")] if app]
    for rule in RoutingRule.objects.filter(deployment=deployment).exclude(slack_bot_token="").order_by("pk"):
        app = _app_of(rule, f"rule:{rule.pk}")
        if app:
            apps.append(app)
    return apps


def interactions_url(deployment_id: int) -> str:
    return absolute(reverse("hitl:slack-interactions", args=[deployment_id]))


def review_url(request: HITLRequest) -> str:
    """The review page itself (sign-in required). The magic link, which acts as the assignee, is never
    posted to a shared channel: the assignee gets it privately with "My review link"."""
    return absolute(reverse("hitl:review", args=[request.pk]))


# --- the Web API, through the egress seam ------------------------------------------------------------


class EgressWebClient(WebClient):
    """slack-sdk's WebClient, sending through `hitl.lib.http` instead of `urllib.request.urlopen`."""

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        method = url.rsplit("/", 1)[-1].split("?", 1)[0]
        data = req.data if isinstance(req.data, bytes) else None
        try:
            response = http.request(
                "POST",
                url,
                body=data,
                headers=dict(req.header_items()),
                timeout=float(self.timeout),
                max_body=MAX_BODY,
            )
        except http.EgressError as exc:
            raise ChannelError(f"Slack {method}: {exc.detail}", retryable=exc.retryable) from None
        return {"status": response.status, "headers": response.headers, "body": response.excerpt(MAX_BODY)}


def client(token: str, *, timeout: float = TIMEOUT) -> WebClient:
    # No retry handlers: a task's delivery is retried (or recorded) by us, never by sleeping in here.
    return EgressWebClient(
        token=token, base_url=settings.HITL_SLACK_API_BASE + "/", timeout=int(timeout) or 1, retry_handlers=[]
    )


def call(token: str, method: str, *, timeout: float = TIMEOUT, **arguments: Any) -> dict[str, Any]:
    """One Web API method by slack-sdk's name for it (`chat_postMessage`, `users_info`, …); the answer's
    data, or ChannelError whose detail never contains the token."""
    try:
        response = getattr(client(token, timeout=timeout), method)(**arguments)
    except SlackApiError as exc:
        status = exc.response.status_code
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        error = str(data.get("error") or "no answer").replace(token, "<token>")
        name = method.replace("_", ".", 1)
        raise ChannelError(f"Slack {name}: HTTP {status}: {error}", retryable=status >= 500 or status == 429) from None
    return response.data if isinstance(response.data, dict) else {}


def slack_error(exc: ChannelError) -> str:
    """The Slack error code in a ChannelError's detail (`user_not_found`, …), or ''."""
    return exc.detail.rsplit(": ", 1)[-1] if ": HTTP " in exc.detail else ""


# --- the message ------------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: no links, mentions or @channel pings from a request's text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def options(request: HITLRequest) -> list[tuple[str, str]]:
    """(label, answer value) per button: emit options, approve/reject, or a few single choices."""
    if request.mode == "approval":
        return [("Approve", "approved"), ("Reject", "rejected")]
    if request.mode == "emit":
        return [(str(o).replace("_", " ").capitalize(), str(o)) for o in request.emit_options]
    if request.mode == "choices" and not request.multiple and len(request.options) <= MAX_BUTTON_CHOICES:
        return [(str(o["label"]), str(o["id"])) for o in request.options]
    return []  # text mode, multiple or many choices, forms: answered on the review page


def _label(text: str, limit: int = 75) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _question(request: HITLRequest) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=f"*{escape(_label(request.message, MAX_QUESTION))}*"))


def _summary_blocks(request: HITLRequest) -> list[Block]:
    blocks: list[Block] = [_question(request)]
    if request.content:
        content = request.content if len(request.content) <= MAX_CONTENT else request.content[:MAX_CONTENT] + "…"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"```{escape(content)}```")))
    who = (
        f"For {escape(request.assigned_to_email)} · {escape(request.deployment.name)} · "
        f"<{review_url(request)}|{'Open the form' if request.mode == 'form' else 'Review page'}>"
    )
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=who)]))
    return blocks


def _buttons(request: HITLRequest) -> list[ButtonElement]:
    rid = request.pk.hex
    buttons = []
    for index, (label, value) in enumerate(options(request)):
        style = {"approved": "primary", "rejected": "danger"}.get(value) if request.mode == "approval" else None
        buttons.append(
            ButtonElement(text=_label(label), action_id=f"{ACTION_OPTION}_{index}", value=f"{rid}:{index}", style=style)
        )
    if buttons:
        buttons.append(ButtonElement(text="With a comment…", action_id=ACTION_COMMENT, value=rid))
    elif request.mode == "text":
        buttons.append(ButtonElement(text="Answer…", action_id=ACTION_TEXT, value=rid, style="primary"))
    buttons.append(ButtonElement(text="My review link", action_id=ACTION_LINK, value=rid))
    return buttons


def message_blocks(request: HITLRequest) -> list[dict[str, Any]]:
    buttons = _buttons(request)
    actions = [
        ActionsBlock(block_id=f"hitl_actions_{n}", elements=buttons[i : i + MAX_ACTIONS_PER_BLOCK])
        for n, i in enumerate(range(0, len(buttons), MAX_ACTIONS_PER_BLOCK))
    ]
    return [block.to_dict() for block in [*_summary_blocks(request), *actions]]


def resolved_blocks(request: HITLRequest, footer: str) -> list[dict[str, Any]]:
    blocks = [*_summary_blocks(request), SectionBlock(text=MarkdownTextObject(text=footer))]
    return [block.to_dict() for block in blocks]


def resolution_footer(request: HITLRequest) -> str | None:
    """Who answered, how, and the outcome; None while the request has no resolution."""
    from hitl.models import Resolution
    from hitl.results import answer_summary

    resolution = Resolution.objects.filter(request=request).first()
    if resolution is None:
        return None
    summary = answer_summary(resolution.result) or resolution.get_status_display()
    who = resolution.responder or resolution.source
    return (
        f":white_check_mark: *{escape(resolution.get_status_display())}*: *{escape(_label(summary, 500))}* — "
        f"by {escape(who)} via {escape(resolution.source)}"
    )


def modal_view(request: HITLRequest, kind: str, channel_id: str) -> dict[str, Any]:
    """The modal for "With a comment…" (pick an option, write the comment) or a text-mode answer."""
    metadata = json.dumps({"r": request.pk.hex, "c": channel_id, "k": kind})
    blocks: list[Block] = [_question(request)]
    if kind == MODAL_COMMENT:
        blocks.append(
            InputBlock(
                block_id="answer",
                label="Your answer",
                element=StaticSelectElement(
                    action_id="value",
                    placeholder="Choose",
                    options=[
                        Option(value=str(i), label=_label(label)) for i, (label, _) in enumerate(options(request))
                    ],
                ),
            )
        )
        blocks.append(
            InputBlock(
                block_id="comment",
                label="Comment",
                element=PlainTextInputElement(action_id="value", multiline=True, max_length=MAX_COMMENT),
            )
        )
    else:
        blocks.append(
            InputBlock(
                block_id="text",
                label="Your answer",
                element=PlainTextInputElement(action_id="value", multiline=True, max_length=MAX_COMMENT),
            )
        )
    view = View(
        type="modal",
        callback_id=MODAL_CALLBACK,
        title="Review request",
        submit="Send",
        close="Cancel",
        private_metadata=metadata,
        blocks=blocks,
    )
    return view.to_dict()


def open_modal(app: App, trigger_id: str, request: HITLRequest, kind: str, channel_id: str) -> None:
    call(
        app.token,
        "views_open",
        timeout=MODAL_TIMEOUT,
        trigger_id=trigger_id,
        view=modal_view(request, kind, channel_id),
    )


def post_ephemeral(app: App, channel_id: str, user_id: str, text: str) -> None:
    """A message only `user_id` sees, in the channel they pressed in."""
    call(app.token, "chat_postEphemeral", channel=channel_id, user=user_id, text=escape(text))


# --- who pressed ------------------------------------------------------------------------------------

USER_CACHE_SECONDS = 300


class Unidentified(Exception):
    """The presser's verified email could not be read; `reason` is audited, `message` is shown to them."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def verified_email(app: App, user_id: str) -> str:
    """The email of a Slack user as Slack vouches for it (`users.info`, needs users:read.email), cached
    for a few minutes per app. Raises Unidentified for unknown, deleted or bot users and unconfirmed or
    hidden emails; ChannelError when Slack cannot be asked."""
    from django.core.cache import cache

    key = "hitl.slack.user:" + hashlib.sha256(f"{app.token}:{user_id}".encode()).hexdigest()[:32]
    cached = cache.get(key)
    if isinstance(cached, str):
        return cached
    try:
        data = call(app.token, "users_info", user=user_id)
    except ChannelError as exc:
        if slack_error(exc) in ("user_not_found", "user_not_visible", "account_inactive"):
            raise Unidentified("unknown_user", "This app cannot find your Slack account.") from None
        raise
    user = data.get("user") or {}
    if user.get("deleted") or user.get("is_bot"):
        raise Unidentified("unknown_user", "Only people can answer review requests.")
    email = str((user.get("profile") or {}).get("email") or "").strip()
    if not email:
        raise Unidentified(
            "no_email", "Your Slack account shows no email to this app (it needs the users:read.email scope)."
        )
    if user.get("is_email_confirmed") is False:
        raise Unidentified("unverified_email", "Your Slack account's email is not confirmed yet.")
    cache.set(key, email, USER_CACHE_SECONDS)
    return email


# --- the channel ------------------------------------------------------------------------------------


class SlackChannel(Channel):
    name = "slack"
    events = SEND_EVENTS | CLOSE_EVENTS

    def wants(self, request: HITLRequest, event: str) -> bool:
        from hitl.models import Channel as ChannelChoice
        from hitl.models import SlackMessage

        if request.channel != ChannelChoice.SLACK:
            return False
        if event in SEND_EVENTS:
            return target_for(request) is not None
        if event in CLOSE_EVENTS:
            return SlackMessage.objects.filter(request=request, closed_at__isnull=True).exists()
        return False

    def notify(self, request: HITLRequest, event: str) -> None:
        if event in CLOSE_EVENTS:
            self.close(request)
        elif request.is_pending:
            self.send(request, event)

    def send(self, request: HITLRequest, event: str) -> None:
        from hitl.models import HITLRequest as Model
        from hitl.models import SlackMessage

        target = target_for(request)
        if target is None:
            return
        to = f"slack:{target.channel_id}"
        if event == Event.REASSIGNED:
            # The older messages name the old assignee: retire them (no buttons), the new one takes over.
            footer = (
                f":arrows_counterclockwise: Reassigned to {escape(request.assigned_to_email)}: answer on the "
                "newer message."
            )
            try:
                self._update_open(request, target, footer)
            except ChannelError as exc:
                logger.warning("slack: retiring the old messages of %s failed: %s", request.pk, exc.detail)
        try:
            data = call(
                target.app.token,
                "chat_postMessage",
                channel=target.channel_id,
                text=escape(_label(request.message, 3000)),  # the notification's text; the blocks are the message
                blocks=message_blocks(request),
                unfurl_links=False,
                unfurl_media=False,
            )
        except ChannelError as exc:
            Model.objects.filter(pk=request.pk).update(notification_error=exc.detail[:1000])
            record_event(
                EventType.NOTIFICATION_FAILED,
                target=request,
                source="slack",
                data={"to": to, "event": event, "error": exc.detail[:1000]},
            )
            raise
        ts = str(data.get("ts") or "")
        SlackMessage.objects.create(
            request=request, channel_id=str(data.get("channel") or target.channel_id), ts=ts, event=event
        )
        Model.objects.filter(pk=request.pk).update(notified_at=timezone.now(), notification_error="")
        record_event(
            EventType.NOTIFICATION_SENT, target=request, source="slack", data={"to": to, "event": event, "ts": ts}
        )

    def close(self, request: HITLRequest) -> None:
        """Update every message about a resolved request: who answered and how; the buttons go."""
        footer = resolution_footer(request)
        target = target_for(request)
        if footer is None or target is None:
            return
        self._update_open(request, target, footer)

    def _update_open(self, request: HITLRequest, target: Target, footer: str) -> None:
        from hitl.models import SlackMessage

        for sent in SlackMessage.objects.filter(request=request, closed_at__isnull=True):
            # Claim it first: a duplicate task finds nothing left to update.
            if not SlackMessage.objects.filter(pk=sent.pk, closed_at__isnull=True).update(closed_at=timezone.now()):
                continue
            try:
                call(
                    target.app.token,
                    "chat_update",
                    channel=sent.channel_id,
                    ts=sent.ts,
                    text=escape(_label(request.message, 3000)),
                    blocks=resolved_blocks(request, footer),
                )
            except ChannelError:
                SlackMessage.objects.filter(pk=sent.pk).update(closed_at=None)  # a later close may manage
                raise


def post_test_message(deployment: Deployment) -> str:
    """The admin's "Test Slack": auth.test, then a message in the deployment's channel. Returns what to
    tell ops staff; raises ChannelError."""
    target = target_for_config(deployment, None)
    if target is None:
        raise ChannelError("Slack is not configured (bot token, signing secret and channel are all needed).")
    auth = call(target.app.token, "auth_test")
    call(
        target.app.token,
        "chat_postMessage",
        channel=target.channel_id,
        text=f"Test message from the HITL server: deployment {escape(deployment.name)} posts its review requests here.",
    )
    bot = auth.get("user") or auth.get("bot_id") or "the bot"
    team = auth.get("team") or "the workspace"
    return f"posted a test message to {target.channel_id} as {bot} in {team}"
