"""Who a chat account is, for requests with approvers (SPEC §13): a Telegram press counts only when it
maps to an approver through a username configured for them (`TelegramIdentity`, set in the admin).
Slack needs nothing of ours: the presser's verified email is the identity."""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import transaction

from audit.models import EventType
from audit.services import record_event
from hitl.models import HITLRequest, Source, TelegramIdentity, normal_telegram_username
from hitl.services.decisions import NotAnApprover


class TelegramAccountChanged(NotAnApprover):
    code = "telegram_account_changed"


def telegram_approver(request: HITLRequest, sender: dict[str, Any], *, actor: str) -> str:
    """The approver email the Telegram account `sender` (a callback query's `from`) stands for on the
    request's deployment. The first press pins the account id to the username; a later press from
    another account with that username is refused. Refusals are audited and raise NotAnApprover."""
    username = normal_telegram_username(str(sender.get("username") or ""))
    account = sender.get("id")
    account_id = account if isinstance(account, int) and not isinstance(account, bool) else None
    identity = (
        TelegramIdentity.objects.filter(deployment_id=request.deployment_id, username=username).first()
        if username
        else None
    )
    if identity is None:
        _refuse(
            request,
            NotAnApprover(
                f"{actor} is not linked to an approver of this request (ask staff to add your Telegram "
                "username to the deployment's Telegram identities)."
            ),
            actor=actor,
        )
    if account_id is None or (identity.user_id is not None and identity.user_id != account_id):
        _refuse(
            request,
            TelegramAccountChanged(
                f"@{username} now belongs to another Telegram account than the one linked to {identity.email}."
            ),
            actor=actor,
        )
    if identity.user_id is None:
        with transaction.atomic():
            pinned = TelegramIdentity.objects.filter(pk=identity.pk, user_id__isnull=True).update(user_id=account_id)
            if pinned:
                record_event(
                    EventType.CONFIG_CHANGED,
                    actor=actor,
                    source=Source.TELEGRAM,
                    target=request.deployment,
                    data={"telegram_identity": identity.email, "username": username, "pinned_user_id": account_id},
                )
        if not pinned and not TelegramIdentity.objects.filter(pk=identity.pk, user_id=account_id).exists():
            _refuse(
                request,
                TelegramAccountChanged(f"@{username} is linked to another Telegram account."),
                actor=actor,
            )
    return identity.email


def _refuse(request: HITLRequest, refusal: NotAnApprover, *, actor: str) -> NoReturn:
    record_event(
        EventType.RESPONSE_REFUSED,
        actor=actor,
        source=Source.TELEGRAM,
        target=request,
        data={"reason": refusal.code, "detail": refusal.detail},
    )
    raise refusal
