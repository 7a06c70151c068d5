"""The admin for webhooks and their delivery log, and the deadline columns of the request admin."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from audit.models import AuditEvent
from hitl.channels import webhook_outbox
from hitl.models import DeliveryStatus, Webhook, WebhookDelivery
from tests.support.base import World
from tests.support.receiver import Receiver


@pytest.fixture
def admin_client_(db: None) -> Client:
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def shown_secrets(response: Any) -> list[str]:
    """Secrets in the messages of a followed redirect (rendered, so consumed)."""
    return re.findall(r"whsec_[A-Za-z0-9+/=]+", response.content.decode())


@pytest.mark.django_db
class TestWebhookAdmin:
    def test_adding_a_webhook_shows_its_secret_once(self, world: World, admin_client_: Client) -> None:
        response = admin_client_.post(
            "/admin/hitl/webhook/add/",
            {
                "deployment": world.deployment.pk,
                "name": "CRM",
                "url": "https://crm.example.com/hitl",
                "active": "on",
                "events": ["new_request", "request_responded"],
                "max_retries": 3,
            },
            follow=True,
        )
        assert response.redirect_chain, response.content
        (secret,) = shown_secrets(response)
        webhook = Webhook.objects.get()
        assert webhook.signing_secret() == secret
        assert webhook.events == ["new_request", "request_responded"] and webhook.max_retries == 3
        assert secret not in webhook.secret_encrypted
        page = admin_client_.get(f"/admin/hitl/webhook/{webhook.pk}/change/")
        assert page.status_code == 200 and secret not in page.content.decode()
        assert AuditEvent.objects.filter(event_type="webhook.changed", actor="ops", data__action="created").exists()

    def test_it_refuses_a_private_or_plain_http_url(self, world: World, admin_client_: Client) -> None:
        for url in ("https://169.254.169.254/", "http://crm.example.com/"):
            response = admin_client_.post(
                "/admin/hitl/webhook/add/",
                {"deployment": world.deployment.pk, "url": url, "active": "on", "max_retries": 5},
            )
            assert response.status_code == 200
            assert response.context["adminform"].form.errors["url"]
        assert not Webhook.objects.exists()

    def test_editing_is_audited(self, world: World, admin_client_: Client) -> None:
        webhook, _ = webhook_outbox.create_webhook(world.deployment, url="https://a.example.com/", actor="test")
        response = admin_client_.post(
            f"/admin/hitl/webhook/{webhook.pk}/change/",
            {"deployment": world.deployment.pk, "url": "https://b.example.com/", "max_retries": 0},
        )
        assert response.status_code == 302, response.content
        webhook.refresh_from_db()
        assert webhook.url == "https://b.example.com/" and not webhook.active and webhook.max_retries == 0
        event = AuditEvent.objects.get(event_type="webhook.changed", data__action="changed")
        assert "url" in event.data["fields"]

    def test_the_rotate_action_shows_a_new_secret(self, world: World, admin_client_: Client) -> None:
        webhook, old = webhook_outbox.create_webhook(world.deployment, url="https://a.example.com/", actor="test")
        response = admin_client_.post(
            "/admin/hitl/webhook/", {"action": "rotate_secret", "_selected_action": [webhook.pk]}, follow=True
        )
        assert response.redirect_chain
        (new,) = shown_secrets(response)
        webhook.refresh_from_db()
        assert new != old and webhook.signing_secret() == new


@pytest.mark.django_db(transaction=True)
class TestDeliveryLog:
    def test_the_log_shows_attempts_and_redeliver_sends_again(
        self, world: World, admin_client_: Client, receiver: Receiver, django_assert_max_num_queries: Any
    ) -> None:
        webhook, receiver.secret = webhook_outbox.create_webhook(world.deployment, url=receiver.url, actor="test")
        receiver.statuses = [404, 404, 404]
        for _ in range(3):
            world.create()
        deliveries = list(WebhookDelivery.objects.all())
        assert all(d.status == DeliveryStatus.FAILED for d in deliveries)

        with django_assert_max_num_queries(12):
            listing = admin_client_.get("/admin/hitl/webhookdelivery/")
        assert listing.status_code == 200 and listing.content.decode().count("new_request") >= 3
        detail = admin_client_.get(f"/admin/hitl/webhookdelivery/{deliveries[0].pk}/change/").content.decode()
        assert "answered 404" in detail and "HTTP 404" in detail
        page = admin_client_.get(f"/admin/hitl/webhook/{webhook.pk}/change/").content.decode()
        assert "Recent deliveries" in page and page.count("/admin/hitl/webhookdelivery/") >= 3

        response = admin_client_.post(
            "/admin/hitl/webhookdelivery/",
            {"action": "redeliver_selected", "_selected_action": [deliveries[0].pk]},
        )
        assert response.status_code == 302
        assert len(receiver.received) == 4
        assert receiver.received[-1].webhook_id == deliveries[0].message_id
        assert receiver.received[-1].seed_ok and receiver.received[-1].standard_ok
        deliveries[0].refresh_from_db()
        assert deliveries[0].status == DeliveryStatus.DELIVERED and deliveries[0].attempt_count == 2


@pytest.mark.django_db
class TestRequestAndDeploymentAdmin:
    def test_the_request_list_shows_deadlines(self, world: World, admin_client_: Client) -> None:
        world.create(timeout=600, default_outcome="approved")
        page = admin_client_.get("/admin/hitl/hitlrequest/").content.decode()
        for column in ("Due at", "Sla due at", "Overdue", "Escalation level"):
            assert column in page

    def test_the_deployment_page_has_reminders_and_escalation(self, world: World, admin_client_: Client) -> None:
        page = admin_client_.get(f"/admin/accounts/deployment/{world.deployment.pk}/change/").content.decode()
        assert "Reminders and escalation" in page and "escalation_emails" in page


@pytest.mark.django_db
class TestDeliveryBodyCapabilities:
    def test_a_view_only_staff_user_never_sees_the_callback_url(
        self, world: World, admin_client_: Client, receiver: Receiver
    ) -> None:
        from django.contrib.auth.models import Permission

        webhook_outbox.create_webhook(world.deployment, url=receiver.url, actor="test")
        created = world.create()
        token = created["callback_url"].rstrip("/").rsplit("/", 1)[-1]
        delivery = WebhookDelivery.objects.get(event="new_request")
        assert token in delivery.body
        viewer = get_user_model().objects.create_user("viewer", "viewer@example.com", "pw", is_staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_webhookdelivery"))
        client = Client()
        client.force_login(viewer)
        page = client.get(f"/admin/hitl/webhookdelivery/{delivery.pk}/change/")
        assert page.status_code == 200 and "new_request" in page.content.decode()
        assert token not in page.content.decode() and "hidden: needs the change" in page.content.decode()
        shown = admin_client_.get(f"/admin/hitl/webhookdelivery/{delivery.pk}/change/").content.decode()
        assert token in shown  # those who may redeliver it see what they send
