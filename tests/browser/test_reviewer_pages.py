"""The reviewer experience in a real browser (issue 5): sign in, inbox, review, magic links, inert
Markdown, choices. Screenshots of the inbox and the review page land in artifacts/screenshots/."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from hitl import services
from hitl.lib import signing
from hitl.lib.links import MAGIC_PURPOSE
from hitl.models import HITLRequest, Resolution, Status
from hitl.views.link_session import encode_email
from tests.browser.conftest import DESKTOP, PHONE, Pages, screenshot, sign_in
from tests.support.base import OUTSIDE_EMAILER, World, build_world

pytestmark = pytest.mark.django_db(transaction=True)

ARTICLE = """# Q3 launch announcement

We're introducing **Acme Flows 2.0** — faster runs, *durable* state and human review built in.

- Up to 3× faster cold starts
- Review steps that survive restarts
- Audit log for every decision

```python
flow = ContentApprovalFlow()
result = flow.kickoff(inputs={"topic": "launch"})
print(result.outcome)
```

> Draft written by the content agent; please check tone and claims.
"""


def build_inbox(world: World) -> HITLRequest:
    """A realistic inbox for the responder; returns the approval request the tests answer."""
    dep = world.deployment
    dep.sla_target_minutes = 60
    dep.save()
    assignee = world.responder.email
    services.create_request(
        dep,
        {
            "message": "Which headline should we publish?",
            "mode": "choices",
            "options": [{"title": "Faster flows"}, {"title": "Humans in the loop"}],
            "label_path": "title",
            "flow_id": "run-2041",
            "flow_name": "article_picker",
            "method_name": "pick_headline",
            "assign_to": assignee,
        },
        actor="test",
    )
    overdue = services.create_request(
        dep,
        {
            "message": "Refund of €1,250 to customer #8812 — approve?",
            "mode": "approval",
            "state": {"amount": 1250, "currency": "EUR"},
            "flow_name": "expense_approval",
            "method_name": "approve_refund",
            "assign_to": assignee,
        },
        actor="test",
    )
    HITLRequest.objects.filter(pk=overdue.pk).update(
        created_at=timezone.now() - timedelta(hours=3), sla_due_at=timezone.now() - timedelta(hours=2)
    )
    done = services.create_request(
        dep,
        {"message": "Publish the pricing page update?", "mode": "approval", "assign_to": assignee},
        actor="test",
    )
    services.respond_to_request(done.pk, services.Answer(outcome="approved"), responder=assignee, source="email")
    return services.create_request(
        dep,
        {
            "message": "Please review this content for brand compliance:",
            "content": ARTICLE,
            "mode": "approval",
            "state": {
                "topic": "Q3 launch",
                "audience": {"segment": "developers", "regions": ["eu", "us"]},
                "draft": {"words": 182, "model": "gpt-x", "revisions": 2},
            },
            "metadata": {"ticket": "MKT-311"},
            "flow_id": "run-2042",
            "flow_name": "content_approval",
            "method_name": "review_content",
            "assign_to": assignee,
        },
        actor="test",
    )


def magic_link_from_outbox(to: str) -> str:
    sent = [m for m in mail.outbox if m.to == [to]]
    assert sent, f"no email to {to}: {[m.to for m in mail.outbox]}"
    match = re.search(r"(https?://\S+/r/\S+?/)(?:\s|$)", sent[-1].body)
    assert match, sent[-1].body
    return match.group(1)


class TestReviewerSignsInAndApproves:
    def test_it_resolves_with_source_dashboard(self, pages: Pages, site: str) -> None:
        world = build_world()
        target = build_inbox(world)

        page = pages.new(DESKTOP)
        sign_in(page, site, "responder")
        rows = page.get_by_role("list", name="Requests").get_by_role("listitem")
        assert rows.count() == 3  # the pending ones (the answered one is under its own tab)
        assert page.get_by_text("1 overdue").is_visible()
        screenshot(page, "inbox-desktop")

        phone = pages.new(PHONE)
        sign_in(phone, site, "responder")
        screenshot(phone, "inbox-phone")
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

        page.get_by_role("link", name=re.compile("brand compliance")).click()
        page.wait_for_url(f"{site}/requests/{target.pk}/")
        assert page.locator("#content h1").inner_text() == "Q3 launch announcement"
        assert page.locator("#content .codehilite").count() == 1  # highlighted code block
        assert page.locator("#context").get_by_text("developers", exact=True).is_visible()
        screenshot(page, "review-desktop")
        phone.goto(f"{site}/requests/{target.pk}/")
        screenshot(phone, "review-phone")
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

        page.get_by_label("Comment").fill("Tone is right; ship it.")
        page.get_by_role("button", name="Approve").click()
        page.wait_for_url(f"{site}/requests/{target.pk}/")
        assert page.get_by_role("heading", name="Answered").is_visible()
        assert page.get_by_text("Thank you — recorded: approved.").is_visible()
        screenshot(page, "review-answered-desktop")

        resolution = Resolution.objects.get(request=target)
        assert resolution.source == "dashboard"
        assert resolution.responder == "responder@example.com"
        assert resolution.result["outcome"] == "approved"
        assert resolution.result["feedback"] == "Tone is right; ship it."
        assert resolution.result["metadata"]["approved"] is True

    def test_a_manager_sees_the_whole_deployment_and_can_reassign(self, pages: Pages, site: str) -> None:
        world = build_world()
        target = build_inbox(world)
        page = pages.new(DESKTOP)
        sign_in(page, site, "manager")
        page.get_by_role("link", name=re.compile("Refund of")).click()
        assert page.get_by_text("Overdue").first.is_visible()
        screenshot(page, "review-manager-desktop")
        page.get_by_label("Reassign to").fill("lead@example.com")
        page.get_by_role("button", name="Reassign").click()
        assert page.get_by_text("Reassigned to lead@example.com").is_visible()
        assert HITLRequest.objects.filter(assigned_to_email="lead@example.com").exclude(pk=target.pk).count() == 1


class TestMagicLinks:
    def test_a_person_without_an_account_confirms_and_it_resolves(self, pages: Pages, site: str) -> None:
        world = build_world()
        mail.outbox.clear()
        created = world.create(
            assign_to=OUTSIDE_EMAILER, message="Approve the partner's invoice?", emit_options=["approved", "rejected"]
        )
        link = magic_link_from_outbox(OUTSIDE_EMAILER)
        assert link.startswith(f"{site}/r/{created['id']}/")

        page = pages.new(PHONE)
        page.goto(link)
        assert OUTSIDE_EMAILER in page.get_by_text("You opened this from your email link").inner_text()
        # Opening the link (what a mail scanner does) changes nothing.
        assert HITLRequest.objects.get(pk=created["id"]).status == Status.PENDING
        screenshot(page, "magic-link-phone")

        page.get_by_label("Comment").fill("Checked against the PO.")
        page.get_by_role("button", name="Approved").click()
        page.wait_for_url(f"{site}/requests/{created['id']}/")
        assert page.get_by_role("heading", name="Answered").is_visible()

        resolution = Resolution.objects.get(request_id=created["id"])
        assert (resolution.source, resolution.responder) == ("dashboard", OUTSIDE_EMAILER)
        assert resolution.result["outcome"] == "approved"
        assert resolution.result["feedback"] == "Checked against the PO."

    def test_an_expired_link_offers_a_fresh_one_by_email(self, pages: Pages, site: str) -> None:
        world = build_world()
        created = world.create(assign_to=OUTSIDE_EMAILER, message="Sign off the Q3 budget?")
        expired = signing.sign(MAGIC_PURPOSE, created["id"], OUTSIDE_EMAILER, ttl=60, since=time.time() - 3600)
        mail.outbox.clear()

        page = pages.new(DESKTOP)
        page.goto(f"{site}/r/{created['id']}/{encode_email(OUTSIDE_EMAILER)}/{expired}/")
        assert page.get_by_role("heading", name="This link has expired").is_visible()
        page.get_by_role("button", name="Send me a fresh link").click()
        assert page.get_by_text("We sent a fresh link to o").is_visible()

        assert [m.to for m in mail.outbox] == [[OUTSIDE_EMAILER]]
        fresh = magic_link_from_outbox(OUTSIDE_EMAILER)
        assert expired not in fresh
        page.goto(fresh)
        assert page.get_by_role("heading", name="Sign off the Q3 budget?").is_visible()
        assert page.get_by_role("button", name="Approved").is_visible()


class TestMarkdownIsInert:
    def test_script_event_handlers_and_javascript_links_do_nothing(self, pages: Pages, site: str) -> None:
        world = build_world()
        hostile = (
            "# Totally normal\n\n"
            "<script>window.__pwned = 'script'</script>\n\n"
            '<img src="/static/hitl/favicon.svg" onerror="window.__pwned=\'onerror\'"'
            " onload=\"window.__pwned='onload'\">\n\n"
            '<a href="javascript:window.__pwned=\'href\'" id="evil">click me</a> and '
            "[also me](javascript:window.__pwned='md')\n\n"
            '<svg><script>window.__pwned="svg"</script></svg>\n\n'
            "<iframe src=\"javascript:parent.__pwned='iframe'\"></iframe>\n"
        )
        created = world.create(assign_to=world.responder.email, content=hostile)
        page = pages.new(DESKTOP)
        sign_in(page, site, "responder", next_path=f"/requests/{created['id']}/")

        content = page.locator("#content")
        assert content.locator("h1").inner_text() == "Totally normal"
        assert content.locator("script, iframe, svg").count() == 0
        handlers = page.evaluate(
            """() => [...document.querySelectorAll('#content *')].flatMap(el =>
                   [...el.attributes].map(a => a.name).filter(n => n.startsWith('on')))"""
        )
        assert handlers == []
        hrefs = page.evaluate("() => [...document.querySelectorAll('#content a')].map(a => a.getAttribute('href'))")
        assert not any((h or "").lower().startswith("javascript:") for h in hrefs)
        page.get_by_text("click me").click()
        page.get_by_text("also me").click()
        page.wait_for_timeout(200)
        assert page.evaluate("window.__pwned") is None


class TestChoices:
    def test_picking_an_option_returns_the_choice_object(self, pages: Pages, site: str) -> None:
        world = build_world()
        articles = [
            {"source": {"title": "Durable flows in practice"}, "url": "https://a.example/1", "blurb": "A case study"},
            {"source": {"title": "Why humans stay in the loop"}, "url": "https://a.example/2", "blurb": "Opinion"},
            {"source": {"title": "Audit logs people read"}, "url": "https://a.example/3", "blurb": "How-to"},
        ]
        created = world.create(
            assign_to=world.responder.email,
            message="Pick the article for Friday's newsletter",
            mode="choices",
            emit_options=None,
            options=articles,
            label_path="source.title",
            value_path="url",
            description_path="blurb",
        )
        page = pages.new(DESKTOP)
        sign_in(page, site, "responder", next_path=f"/requests/{created['id']}/")
        assert page.get_by_text("Opinion").is_visible()
        page.get_by_label(re.compile("Why humans stay in the loop")).check()
        page.get_by_role("button", name="Submit choice").click()
        page.wait_for_url(f"{site}/requests/{created['id']}/")
        assert page.get_by_role("heading", name="Answered").is_visible()

        result = Resolution.objects.get(request_id=created["id"]).result
        assert result["response_type"] == "choice"
        assert result["choice"] == {
            "id": "option_2",
            "label": "Why humans stay in the loop",
            "value": "https://a.example/2",
            "description": "Opinion",
            "raw": articles[1],
        }
        assert result["choices"] == [] and result["source"] == "dashboard"
