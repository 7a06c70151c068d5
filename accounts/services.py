"""Writes for organizations, deployments and API keys, audited."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey, Deployment, Organization
from audit.models import EventType
from audit.services import record_event
from hitl.lib.addresses import clean_email
from hitl.lib.errors import InvalidInput


@transaction.atomic
def create_deployment(
    *,
    name: str,
    creator_email: str,
    organization: str = "Default",
    actor: str = "system",
) -> Deployment:
    """Create a deployment; the creator (the fallback assignee) is found or created by email. Flows are
    attached by `flows.services.attach_flows` (accounts imports no app above it)."""
    email = clean_email(creator_email)
    if email is None:
        # The creator is every unrouted request's assignee: a bad address would strand them all.
        raise InvalidInput({"creator_email": [f"{creator_email!r} is not a valid email address."]})
    User = get_user_model()
    creator = User.objects.filter(email__iexact=email).order_by("id").first()
    if creator is None:
        creator = User.objects.create_user(username=email, email=email)
        creator.set_unusable_password()
        creator.save(update_fields=["password"])
    org, _ = Organization.objects.get_or_create(name=organization)
    if Deployment.objects.filter(organization=org, name=name).exists():
        # Names are unique per organization; say so rather than fail on the constraint.
        raise InvalidInput(
            {"name": [f"The organization {org.name!r} already has a deployment named {name!r}."]},
            code="duplicate_name",
        )
    deployment = Deployment.objects.create(organization=org, name=name, creator=creator)
    record_event(
        EventType.CONFIG_CHANGED,
        actor=actor,
        target=deployment,
        deployment_id=deployment.pk,
        data={
            "action": "deployment.created",
            "name": name,
            "creator": email,
            "organization": org.name,
        },
    )
    return deployment


@transaction.atomic
def create_api_key(
    deployment: Deployment, *, name: str = "default", access: str = ApiKey.Access.FULL, actor: str = "system"
) -> tuple[ApiKey, str]:
    """Return the key row and the secret, which is never stored and cannot be shown again."""
    secret, prefix, key_hash = ApiKey.generate()
    key = ApiKey.objects.create(deployment=deployment, name=name, prefix=prefix, key_hash=key_hash, access=access)
    record_event(
        EventType.API_KEY_CREATED,
        actor=actor,
        target=key,
        deployment_id=deployment.pk,
        data={"name": name, "prefix": prefix, "access": access},
    )
    return key, secret


@transaction.atomic
def revoke_api_key(key: ApiKey, *, actor: str) -> None:
    if ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
        record_event(
            EventType.API_KEY_REVOKED,
            actor=actor,
            target=key,
            deployment_id=key.deployment_id,
            data={"name": key.name, "prefix": key.prefix},
        )
