"""A deployment's routing rules and webhooks are cached per process by `Deployment.config_version`
(issue 21): read once, not on every create and answer; every change moves the version on in its own
transaction, so the next request of any process uses the new rules."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from accounts.models import Deployment
from hitl.channels import webhook_outbox
from hitl.models import HITLRequest, RoutingRule, WebhookDelivery
from tests.support.base import World
from tests.support.receiver import Receiver

pytestmark = pytest.mark.django_db


def assignee(world: World, **payload: Any) -> str:
    return HITLRequest.objects.get(pk=world.create(method_name="review_post", **payload)["id"]).assigned_to_email


def rule(world: World, email: str, **fields: Any) -> RoutingRule:
    return RoutingRule.objects.create(
        deployment=world.deployment, name=email, method_pattern="review_*", assign_to_email=email, **fields
    )


class TestRulesCache:
    def test_the_second_create_reads_no_rules(self, world: World) -> None:
        rule(world, "first@example.com")
        assert assignee(world) == "first@example.com"
        with CaptureQueriesContext(connection) as queries:
            assert assignee(world) == "first@example.com"
        assert not [q for q in queries.captured_queries if "hitl_routingrule" in q["sql"]]

    def test_a_rule_added_changed_or_deleted_applies_to_the_next_create(self, world: World) -> None:
        before = assignee(world)  # no rule: the creator; cached now
        first = rule(world, "first@example.com")
        assert assignee(world) == "first@example.com"
        first.assign_to_email = "changed@example.com"
        first.save()
        assert assignee(world) == "changed@example.com"
        rule(world, "urgent@example.com", priority=1)
        assert assignee(world) == "urgent@example.com"
        RoutingRule.objects.filter(priority=1).delete()  # a queryset delete sends the signals too
        assert assignee(world) == "changed@example.com"
        first.enabled = False
        first.save()
        assert assignee(world) == before

    def test_a_change_another_process_made_is_seen_through_the_version(self, world: World) -> None:
        assert assignee(world) != "elsewhere@example.com"
        # bulk_create sends no signal: as a write this process does not see, another process's.
        elsewhere = RoutingRule(
            deployment=world.deployment, name="x", method_pattern="*", assign_to_email="elsewhere@example.com"
        )
        RoutingRule.objects.bulk_create([elsewhere])
        assert assignee(world) != "elsewhere@example.com"  # this process still has the old version's rules
        # … and the other process's change moved the version on, in the deployment row every request reads.
        Deployment.objects.filter(pk=world.deployment.pk).update(config_version=F("config_version") + 1)
        assert assignee(world) == "elsewhere@example.com"

    def test_another_deployments_rules_never_apply(self, world: World) -> None:
        RoutingRule.objects.create(
            deployment=world.other, name="o", method_pattern="*", assign_to_email="o@example.com"
        )
        assert assignee(world) != "o@example.com"


class TestWebhooksCache:
    def test_a_webhook_added_after_the_cache_filled_gets_the_next_event(self, world: World, receiver: Receiver) -> None:
        world.create()
        assert WebhookDelivery.objects.count() == 0
        webhook_outbox.create_webhook(world.deployment, url=receiver.url, actor="test")
        created = world.create()
        assert WebhookDelivery.objects.filter(request_id=created["id"]).count() == 1

    def test_a_webhook_turned_off_by_410_gets_no_more_events(self, world: World, receiver: Receiver) -> None:
        webhook, receiver.secret = webhook_outbox.create_webhook(world.deployment, url=receiver.url, actor="test")
        receiver.statuses = [410]
        world.create()  # delivered inline (sync mode): the receiver answers 410 Gone
        webhook.refresh_from_db()
        assert not webhook.active
        later = world.create()
        assert not WebhookDelivery.objects.filter(request_id=later["id"]).exists()


class TestTheVersionNeverGoesBack:
    def test_saving_a_deployment_read_before_a_bump_keeps_the_newer_version(self, world: World) -> None:
        stale = Deployment.objects.get(pk=world.deployment.pk)
        rule(world, "new@example.com")  # another process: the version moves on
        moved = Deployment.objects.get(pk=world.deployment.pk).config_version
        assert moved > stale.config_version
        stale.name = "Renamed"
        stale.save()
        fresh = Deployment.objects.get(pk=world.deployment.pk)
        assert (fresh.name, fresh.config_version) == ("Renamed", moved)
