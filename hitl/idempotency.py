"""`Idempotency-Key` on the POSTs that change something (SPEC §15): create, respond, cancel, kickoff, resume.

A client that retries after a timeout or a 503 sends the same key again; the first call's response
comes back with `Idempotent-Replayed: true` and nothing happens a second time. The database decides:
the (principal, key) row is inserted in its own transaction before the call runs, so of several
concurrent duplicates (in as many processes) exactly one gets in; the others see the row and answer
409 `idempotency_in_progress` until it is complete, then replay it.

Only a success (2xx) is kept: a refused call changed nothing, so its key is released and a corrected
retry may use it again. Keys are scoped per API key (or per signed-in user), so a read-only key cannot
replay what a full key did, and two deployments never see each other's responses.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.lib.access import ApiKeyPrincipal
from hitl.lib import crypto
from hitl.models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_LENGTH = 255
# Response headers worth replaying; the rest (Date, Vary, Allow …) the server sets afresh.
KEPT_HEADERS = ("Location",)
# The call runs in one transaction with its key's completion, holding the key row's lock (PostgreSQL):
# a row still in progress, older than ABANDONED_UNLOCKED_AFTER and not locked, is a call whose process
# died mid-call (its transaction rolled back: nothing happened), so the next retry takes it over. The
# grace covers the instant between the claim's commit and the call taking the lock. Where rows cannot
# be locked (SQLite), a row still in progress after ABANDONED_AFTER is taken over.
ABANDONED_UNLOCKED_AFTER = timedelta(seconds=10)
ABANDONED_AFTER = timedelta(minutes=10)

PARAMETER = OpenApiParameter(
    HEADER,
    str,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Makes a retry safe (≤ 255 characters, kept 24 h per API key or user). The same key with the same "
        "body returns the first response again with `Idempotent-Replayed: true` and does nothing else; the "
        "same key with a different body is 422 `idempotency_key_reused`; while the first call is still "
        "running, 409 `idempotency_in_progress`."
    ),
)

View = TypeVar("View", bound=Callable[..., Response])


class BadKey(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = f"An Idempotency-Key is 1 to {MAX_LENGTH} printable characters."
    default_code = "invalid_idempotency_key"


class KeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was already used with a different request body."
    default_code = "idempotency_key_reused"


class InProgress(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "A request with this Idempotency-Key is still in progress; retry in a moment."
    default_code = "idempotency_in_progress"


def principal_of(user: Any) -> str | None:
    if isinstance(user, ApiKeyPrincipal):
        return f"key:{user.key.pk}"
    if getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return None


def fingerprint(method: str, path: str, body: Any) -> str:
    if hasattr(body, "lists"):  # a form's QueryDict: every value of every field
        body = dict(body.lists())
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


def validate_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_LENGTH or not key.isprintable():
        raise BadKey()
    return key


def claim(principal: str, key: str, digest: str, now: datetime | None = None) -> IdempotencyKey | Response:
    """Take (principal, key) for a new call, or answer for the call that already has it.

    Returns the fresh row (the caller runs the call and completes it) or the replayed response; raises
    `KeyReused` or `InProgress`. The insert is its own transaction, committed before the call runs."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(principal=principal, key=key, fingerprint=digest, created_at=now)
    except IntegrityError:
        pass
    row = IdempotencyKey.objects.filter(principal=principal, key=key).first()
    if row is None:  # released (the first call failed) between our insert and this read: try once more
        return claim_again(principal, key, digest, now)
    if row.created_at < now - IdempotencyKey.LIFETIME or (row.completed_at is None and _abandoned(row, now)):
        # Expired or abandoned: take it over with a compare-and-set, so one retry of many wins.
        taken = IdempotencyKey.objects.filter(pk=row.pk, created_at=row.created_at).update(
            fingerprint=digest, created_at=now, completed_at=None, status_code=None, response_encrypted=""
        )
        if taken:
            row.refresh_from_db()
            return row
        raise InProgress()
    if row.fingerprint != digest:
        raise KeyReused()
    if row.completed_at is None or row.status_code is None:
        raise InProgress()
    return replay(row)


def _abandoned(row: IdempotencyKey, now: datetime) -> bool:
    if row.created_at < now - ABANDONED_AFTER:
        return True
    if connection.vendor != "postgresql" or row.created_at >= now - ABANDONED_UNLOCKED_AFTER:
        return False
    with transaction.atomic():
        free = IdempotencyKey.objects.select_for_update(skip_locked=True).filter(pk=row.pk, completed_at__isnull=True)
        return free.exists()


def _hold(row: IdempotencyKey) -> None:
    """Lock the key's row until the call's transaction ends (PostgreSQL; a no-op on SQLite)."""
    list(IdempotencyKey.objects.select_for_update().filter(pk=row.pk).values_list("pk", flat=True))


def claim_again(principal: str, key: str, digest: str, now: datetime) -> IdempotencyKey | Response:
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(principal=principal, key=key, fingerprint=digest, created_at=now)
    except IntegrityError:
        raise InProgress() from None


def replay(row: IdempotencyKey) -> Response:
    assert row.status_code is not None
    headers = {**(row.response_headers or {}), REPLAYED_HEADER: "true"}
    return Response(json.loads(crypto.decrypt(row.response_encrypted)), status=row.status_code, headers=headers)


def release(row: IdempotencyKey) -> None:
    IdempotencyKey.objects.filter(pk=row.pk).delete()


def complete(row: IdempotencyKey, response: Response) -> None:
    """Keep a success for replay; release the key after anything else (nothing happened)."""
    if not 200 <= response.status_code < 300:
        release(row)
        return
    body = crypto.encrypt(json.dumps(response.data, cls=DjangoJSONEncoder))
    headers = {name: response[name] for name in KEPT_HEADERS if response.has_header(name)}
    IdempotencyKey.objects.filter(pk=row.pk).update(
        status_code=response.status_code, response_encrypted=body, response_headers=headers, completed_at=timezone.now()
    )


def idempotent(view: View) -> View:
    """Decorate a DRF view method (`def post(self, request, …)`); put it outermost, above `@action` and
    `@extend_schema`. Without the header the call runs as before."""

    @functools.wraps(view)
    def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        raw = request.headers.get(HEADER)
        if raw is None:
            return view(self, request, *args, **kwargs)
        key = validate_key(raw)
        principal = principal_of(request.user)
        if principal is None:
            return view(self, request, *args, **kwargs)  # the view refuses the anonymous caller itself
        claimed = claim(principal, key, fingerprint(request.method or "POST", request.path, request.data))
        if isinstance(claimed, Response):
            return claimed
        refused: Exception | None = None
        try:
            # One transaction: the call's changes commit with the key's completion or not at all, so a
            # key left in progress by a dead process means nothing happened (see ABANDONED_*).
            with transaction.atomic():
                _hold(claimed)
                try:
                    response = view(self, request, *args, **kwargs)
                except DatabaseError:
                    raise
                except Exception as exc:
                    refused = exc  # what a refusal recorded (its audit event) commits; the key is released
                else:
                    complete(claimed, response)
        except BaseException:
            release(claimed)
            raise
        if refused is not None:
            release(claimed)
            raise refused
        return response

    return extend_schema(parameters=[PARAMETER])(wrapper)  # type: ignore[return-value]
