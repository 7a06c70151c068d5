"""A deployment's routing rules and active webhooks, cached per process (issue 21: they were read on
every create and every answer). The cache is keyed by `Deployment.config_version`, which every change
to a rule or webhook moves on in the same transaction (`bump`, from the models' save and delete signals
and from the services that change webhooks with `update()`); the deployment row each request already
loads carries the version, so a process sees a change on its next request, and no process can use
rules older than the deployment row it read. At most a few hundred entries are kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db.models import F

from accounts.models import Deployment

T = TypeVar("T")
MAX_ENTRIES = 512
_entries: dict[tuple[str, int, int], Any] = {}


def cached(kind: str, deployment: Deployment, load: Callable[[], T]) -> T:
    key = (kind, deployment.pk, deployment.config_version)
    try:
        return _entries[key]  # type: ignore[no-any-return]
    except KeyError:
        pass
    value = load()
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()  # old versions of every deployment go with it; the live ones reload once
    _entries[key] = value
    return value


def bump(deployment_id: Any) -> None:
    """The deployment's rules or webhooks changed: every process reloads them on its next use."""
    Deployment.objects.filter(pk=deployment_id).update(config_version=F("config_version") + 1)


def clear() -> None:
    _entries.clear()


def routing_rules(deployment: Deployment) -> list[Any]:
    """The enabled rules in the order they are tried."""
    return cached(
        "rules", deployment, lambda: list(deployment.routing_rules.filter(enabled=True).order_by("priority", "id"))
    )


def active_webhooks(deployment: Deployment) -> list[Any]:
    from hitl.models import Webhook

    return cached("webhooks", deployment, lambda: list(Webhook.objects.filter(deployment=deployment, active=True)))


def connect_signals() -> None:
    """Bump on every save and delete of a rule or webhook (the admin, services, shell)."""
    from django.db.models.signals import post_delete, post_save

    from hitl.models import RoutingRule, Webhook

    def changed(sender: Any, instance: Any, **kwargs: Any) -> None:
        bump(instance.deployment_id)

    for model in (RoutingRule, Webhook):
        uid = f"hitl.config_cache.{model.__name__}"
        post_save.connect(changed, sender=model, dispatch_uid=uid + ".save", weak=False)
        post_delete.connect(changed, sender=model, dispatch_uid=uid + ".delete", weak=False)
