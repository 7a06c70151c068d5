"""Generated matrix (SPEC §10): every admin action × a staff user holding one single permission. An
action is offered and runs only for the permission it declares; anything else is refused and changes
nothing. Object permissions on deployments are granted only by superusers or their managers."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from guardian.shortcuts import assign_perm

from audit.models import AuditEvent
from hitl.channels import webhook_outbox
from hitl.models import DeliveryStatus, HITLRequest, WebhookDelivery
from tests.support.base import World

pytestmark = pytest.mark.django_db

# (model label, action) → the permissions that may run it. Every registered action must be listed.
REQUIRED: dict[tuple[str, str], set[str]] = {
    ("hitl.hitlrequest", "cancel_selected"): {"hitl.change_hitlrequest"},
    ("hitl.hitlrequest", "reassign_selected"): {"hitl.change_hitlrequest"},
    ("hitl.hitlrequest", "resend_selected"): {"hitl.change_hitlrequest"},
    ("hitl.webhook", "rotate_secret"): {"hitl.change_webhook"},
    ("hitl.webhookdelivery", "redeliver_selected"): {"hitl.change_webhookdelivery"},
    ("hitl.notificationdelivery", "try_again"): {"hitl.change_notificationdelivery"},
    ("accounts.apikey", "revoke"): {"accounts.change_apikey"},
    ("accounts.deployment", "register_telegram_webhook"): {"accounts.change_deployment"},
    ("accounts.deployment", "test_slack"): {"accounts.change_deployment"},
    ("audit.auditevent", "export_jsonl"): {"audit.view_auditevent", "audit.change_auditevent"},
    ("audit.auditevent", "export_csv"): {"audit.view_auditevent", "audit.change_auditevent"},
}
# Django's own delete action needs delete *and* view: no single permission runs it (and the append-only
# or read-only models refuse delete altogether).
DELETE_MODELS = [
    "hitl.webhook",
    "accounts.apikey",
    "accounts.deployment",
    "accounts.organization",
    "hitl.routingrule",
    "hitl.inboundemail",
    "hitl.sentemail",
    "flows.deploymentflow",
    "flows.flowrun",
    "hitl.webhookdelivery",
    "hitl.notificationdelivery",
    "audit.auditevent",
    "hitl.hitlrequest",
]
REQUIRED.update({(label, "delete_selected"): set() for label in DELETE_MODELS})
# Besides its own model's permissions, every action is tried with these (they open other doors).
OUTSIDERS = ["accounts.manage_human_feedback", "hitl.change_hitlrequest"]


def _registered_actions() -> list[tuple[str, str, Any]]:
    found = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in ("hitl", "accounts", "flows", "audit"):
            continue
        for _, name, _ in model_admin._get_base_actions():  # the site's actions and the admin's own
            found.append((model._meta.label_lower, name, model))
    return found


ACTIONS = _registered_actions()


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for label, name, _model in ACTIONS:
        app, model_name = label.split(".")
        codenames = [f"{app}.{verb}_{model_name}" for verb in ("view", "add", "change", "delete")]
        for perm in sorted({*codenames, *([] if name == "delete_selected" else OUTSIDERS)}):
            cases.append((label, name, perm))
    return cases


def _staff_with(perm: str) -> Client:
    user = get_user_model().objects.create_user("staffer", "staffer@example.com", "pw", is_staff=True)
    app, codename = perm.split(".")
    user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    client = Client()
    client.force_login(user)
    return client


def _object_of(world: World, label: str) -> Any:
    if label == "hitl.hitlrequest":
        return HITLRequest.objects.get(pk=world.create()["id"])
    if label in ("hitl.webhook", "hitl.webhookdelivery"):
        webhook, _ = webhook_outbox.create_webhook(world.deployment, url="https://a.example.com/", actor="test")
        if label == "hitl.webhook":
            return webhook
        request = HITLRequest.objects.get(pk=world.create()["id"])
        return WebhookDelivery.objects.create(
            webhook=webhook,
            request=request,
            event="request.created",
            message_id="msg_1",
            body="{}",
            status=DeliveryStatus.FAILED,
        )
    model = admin.site._registry[next(m for lbl, _, m in ACTIONS if lbl == label)].model
    if label == "accounts.deployment":
        return world.deployment
    if label == "accounts.organization":
        return world.deployment.organization
    if label == "accounts.apikey":
        return model.objects.filter(deployment=world.deployment).first()
    if label == "audit.auditevent":
        return AuditEvent.objects.order_by("-id").first()
    world.create()
    return model.objects.order_by("-pk").first() if model.objects.exists() else None


class TestAdminActionMatrix:
    def test_it_lists_every_registered_action(self) -> None:
        assert {(label, name) for label, name, _ in ACTIONS} == set(REQUIRED)

    @pytest.mark.parametrize(("label", "action", "perm"), _cases())
    def test_it_offers_and_runs_an_action_only_for_its_declared_permission(
        self, world: World, label: str, action: str, perm: str
    ) -> None:
        allowed = perm in REQUIRED[(label, action)]
        obj = _object_of(world, label)
        client = _staff_with(perm)
        url = f"/admin/{label.replace('.', '/')}/"
        page = client.get(url)
        offered = page.status_code == 200 and f'<option value="{action}">' in page.content.decode()
        assert offered == allowed, (label, action, perm, page.status_code)
        if allowed or obj is None:
            return
        events = AuditEvent.objects.count()
        snapshot = list(type(obj).objects.filter(pk=obj.pk).values())
        client.post(
            url,
            {"action": action, "_selected_action": [obj.pk], "post": "yes", "apply": "1", "email": "taken@example.com"},
        )
        assert AuditEvent.objects.count() == events, (label, action, perm)
        assert list(type(obj).objects.filter(pk=obj.pk).values()) == snapshot, (label, action, perm)


class TestObjectPermissionPages:
    def _staff(self, *perms: str) -> tuple[Any, Client]:
        user = get_user_model().objects.create_user("granter", "granter@example.com", "pw", is_staff=True)
        for perm in perms:
            app, codename = perm.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
        client = Client()
        client.force_login(user)
        return user, client

    def test_it_refuses_a_deployment_editor_without_manage(self, world: World) -> None:
        _, client = self._staff("accounts.change_deployment", "accounts.view_deployment")
        base = f"/admin/accounts/deployment/{world.other.pk}/permissions/"
        assert client.get(base).status_code == 403
        granter = get_user_model().objects.get(username="granter")
        response = client.post(f"{base}user-manage/{granter.pk}/", {"permissions": ["manage_human_feedback"]})
        assert response.status_code == 403
        assert not granter.has_perm("accounts.manage_human_feedback", world.other)

    def test_it_lets_the_manager_of_that_deployment_grant(self, world: World) -> None:
        user, client = self._staff("accounts.change_deployment", "accounts.view_deployment")
        assign_perm("accounts.manage_human_feedback", user, world.deployment)
        assert client.get(f"/admin/accounts/deployment/{world.deployment.pk}/permissions/").status_code == 200
        assert client.get(f"/admin/accounts/deployment/{world.other.pk}/permissions/").status_code == 403

    def test_it_lets_a_superuser_grant(self, world: World) -> None:
        root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
        client = Client()
        client.force_login(root)
        assert client.get(f"/admin/accounts/deployment/{world.other.pk}/permissions/").status_code == 200
