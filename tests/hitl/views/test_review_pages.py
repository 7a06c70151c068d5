"""Reviewer pages with Django's test client (issue 5): the permission trio on every page, the inbox's
filters and counts, answering in every mode, manager and assignee actions, magic links."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from hitl.lib import signing
from hitl.lib.links import MAGIC_PURPOSE, magic_link_url
from hitl.models import AssignmentStep, HITLRequest, Resolution, Status
from hitl.views.link_session import encode_email
from tests.support.base import OUTSIDE_EMAILER, World

pytestmark = pytest.mark.django_db

RESPONDER = "responder@example.com"


def client_for(world: World, who: str, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    if who != "anonymous":
        client.force_login(getattr(world, who))
    return client


def new_request(world: World, **payload: Any) -> HITLRequest:
    payload.setdefault("assign_to", RESPONDER)
    return HITLRequest.objects.get(pk=world.create(**payload)["id"])


def other_deployment_request(world: World) -> HITLRequest:
    return HITLRequest.objects.get(pk=world.create("other_key", assign_to=RESPONDER)["id"])


def link_path(request: HITLRequest, email: str | None = None) -> str:
    return magic_link_url(request, email).removeprefix("https://hitl.example.test")


class TestReviewPagePermissions:
    """GET /requests/<id>/: allowed, 404 for other deployments and strangers, 403 in the deployment."""

    def test_it_shows_the_request_to_its_assignee_and_managers(self, world: World) -> None:
        req = new_request(world, message="Ship the Q3 copy?")
        for who in ("responder", "manager"):
            response = client_for(world, who).get(f"/requests/{req.pk}/")
            assert response.status_code == 200, who
            assert b"Ship the Q3 copy?" in response.content

    def test_other_deployments_and_strangers_get_404(self, world: World) -> None:
        req = new_request(world)
        elsewhere = other_deployment_request(world)  # assigned to the responder's email, in the wrong deployment
        assert client_for(world, "responder").get(f"/requests/{elsewhere.pk}/").status_code == 404
        assert client_for(world, "manager").get(f"/requests/{elsewhere.pk}/").status_code == 404
        assert client_for(world, "stranger").get(f"/requests/{req.pk}/").status_code == 404

    def test_a_responder_gets_403_for_a_colleagues_request(self, world: World) -> None:
        req = new_request(world, assign_to="colleague@example.com")
        assert client_for(world, "responder").get(f"/requests/{req.pk}/").status_code == 403

    def test_anonymous_visitors_are_sent_to_sign_in(self, world: World) -> None:
        req = new_request(world)
        response = Client().get(f"/requests/{req.pk}/")
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next=/requests/{req.pk}/"

    def test_it_sets_a_strict_content_security_policy_and_no_caching(self, world: World) -> None:
        req = new_request(world)
        response = client_for(world, "responder").get(f"/requests/{req.pk}/")
        assert "script-src 'self'" in response["Content-Security-Policy"]
        assert "no-store" in response["Cache-Control"]


class TestAnswering:
    def test_it_resolves_through_the_shared_path_with_source_dashboard(self, world: World) -> None:
        req = new_request(world, emit_options=["approved", "rejected", "needs_revision"])
        response = client_for(world, "responder").post(
            f"/requests/{req.pk}/answer/", {"outcome": "needs_revision", "feedback": "Tighten the intro"}
        )
        assert response.status_code == 302 and response["Location"] == f"/requests/{req.pk}/"
        result = Resolution.objects.get(request=req).result
        assert (result["outcome"], result["feedback"], result["source"]) == (
            "needs_revision",
            "Tighten the intro",
            "dashboard",
        )
        assert result["responder"] == RESPONDER
        event = AuditEvent.objects.get(event_type="response.submitted")
        assert (event.actor, event.source) == (RESPONDER, "dashboard")

    def test_the_answer_permission_trio(self, world: World) -> None:
        mine = new_request(world)
        colleagues = new_request(world, assign_to="colleague@example.com")
        elsewhere = other_deployment_request(world)
        responder = client_for(world, "responder")
        assert responder.post(f"/requests/{elsewhere.pk}/answer/", {"outcome": "approved"}).status_code == 404
        assert responder.post(f"/requests/{colleagues.pk}/answer/", {"outcome": "approved"}).status_code == 403
        stranger = client_for(world, "stranger")
        assert stranger.post(f"/requests/{mine.pk}/answer/", {"outcome": "approved"}).status_code == 404
        assert not Resolution.objects.exists()
        # Manage alone does not answer (SPEC §10); manage with respond: see tests/accounts/access.
        manager = client_for(world, "manager")
        assert manager.post(f"/requests/{colleagues.pk}/answer/", {"outcome": "approved"}).status_code == 403
        assert not Resolution.objects.exists()

    def test_a_resolved_request_shows_who_how_when_and_the_feedback(self, world: World) -> None:
        req = new_request(world)
        client = client_for(world, "responder")
        client.post(f"/requests/{req.pk}/answer/", {"outcome": "rejected", "feedback": "Off-brand <b>tone</b>"})
        page = client.get(f"/requests/{req.pk}/").content.decode()
        assert "Answered" in page and "Rejected" in page and RESPONDER in page and "Dashboard" in page
        assert "Off-brand &lt;b&gt;tone&lt;/b&gt;" in page
        assert 'name="outcome"' not in page  # no answer form any more

    def test_a_second_answer_is_refused_politely(self, world: World) -> None:
        req = new_request(world)
        client = client_for(world, "responder")
        client.post(f"/requests/{req.pk}/answer/", {"outcome": "approved"})
        response = client.post(f"/requests/{req.pk}/answer/", {"outcome": "rejected"}, follow=True)
        assert "already answered by responder@example.com" in response.content.decode()
        assert Resolution.objects.get().outcome == "approved"
        assert AuditEvent.objects.filter(event_type="response.refused").count() == 1

    def test_an_answer_that_does_not_fit_shows_the_page_again(self, world: World) -> None:
        req = new_request(world)
        response = client_for(world, "responder").post(f"/requests/{req.pk}/answer/", {"outcome": "maybe"})
        assert response.status_code == 400
        assert "&#x27;maybe&#x27; is not an option" in response.content.decode()
        assert HITLRequest.objects.get(pk=req.pk).status == Status.PENDING

    def test_text_mode_requires_the_typed_answer(self, world: World) -> None:
        req = new_request(world, mode="text", emit_options=None)
        client = client_for(world, "responder")
        page = client.get(f"/requests/{req.pk}/").content.decode()
        assert re.search(r'<textarea name="text" id="id_text" rows="6" required>', page)
        assert client.post(f"/requests/{req.pk}/answer/", {"text": "  "}).status_code == 400
        client.post(f"/requests/{req.pk}/answer/", {"text": "Use the 2024 figures."})
        result = Resolution.objects.get().result
        assert (result["response_type"], result["text"]) == ("text", "Use the 2024 figures.")

    def test_multiple_choices_return_every_chosen_option(self, world: World) -> None:
        req = new_request(
            world,
            mode="choices",
            multiple=True,
            emit_options=None,
            options=[{"t": "EU", "d": "Europe"}, {"t": "US"}, {"t": "APAC"}],
            label_path="t",
            description_path="d",
        )
        client = client_for(world, "responder")
        page = client.get(f"/requests/{req.pk}/").content.decode()
        assert 'type="checkbox" name="choice" value="option_1"' in page and "Europe" in page
        client.post(f"/requests/{req.pk}/answer/", {"choice": ["option_1", "option_3"], "feedback": "both"})
        result = Resolution.objects.get().result
        assert [c["label"] for c in result["choices"]] == ["EU", "APAC"]
        assert result["choice"]["id"] == "option_1" and result["feedback"] == "both"

    def test_edit_before_approving_returns_edited_output(self, world: World) -> None:
        req = new_request(world, mode="approval", emit_options=None, editable=True, content="Helo world")
        client = client_for(world, "responder")
        assert "Edit the content before answering" in client.get(f"/requests/{req.pk}/").content.decode()
        client.post(f"/requests/{req.pk}/answer/", {"outcome": "approved", "edited_output": "Hello world\r\n"})
        result = Resolution.objects.get().result
        assert (result["outcome"], result["output"], result["edited_output"]) == (
            "approved",
            "Helo world",
            "Hello world\n",
        )

    def test_an_unchanged_editable_content_is_not_an_edit(self, world: World) -> None:
        req = new_request(world, editable=True, content="Fine as is")
        client_for(world, "responder").post(
            f"/requests/{req.pk}/answer/", {"outcome": "approved", "edited_output": "Fine as is"}
        )
        assert Resolution.objects.get().result["edited_output"] is None

    def test_not_editable_requests_ignore_an_edited_field(self, world: World) -> None:
        req = new_request(world, content="Fixed")
        page = client_for(world, "responder").get(f"/requests/{req.pk}/").content.decode()
        assert "edited_output" not in page
        client_for(world, "responder").post(
            f"/requests/{req.pk}/answer/", {"outcome": "approved", "edited_output": "Changed"}
        )
        assert Resolution.objects.get().result["edited_output"] is None

    def test_every_form_needs_a_csrf_token(self, world: World) -> None:
        req = new_request(world)
        client = client_for(world, "responder", enforce_csrf_checks=True)
        assert client.post(f"/requests/{req.pk}/answer/", {"outcome": "approved"}).status_code == 403
        page = client.get(f"/requests/{req.pk}/").content.decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token
        response = client.post(f"/requests/{req.pk}/answer/", {"outcome": "approved", "csrfmiddlewaretoken": token[1]})
        assert response.status_code == 302


class TestAnsweredPage:
    """Issue 13: the answered page said "0 minutes after it was asked" whenever it was answered."""

    @pytest.mark.parametrize(
        ("asked_ago", "said"),
        [(timedelta(minutes=90), "1 hour, 30 minutes"), (timedelta(days=2, hours=3), "2 days, 3 hours")],
    )
    def test_it_says_how_long_after_it_was_asked(self, world: World, asked_ago: timedelta, said: str) -> None:
        req = new_request(world)
        HITLRequest.objects.filter(pk=req.pk).update(created_at=timezone.now() - asked_ago)
        responder = client_for(world, "responder")
        assert responder.post(f"/requests/{req.pk}/answer/", {"outcome": "approved"}).status_code == 302
        page = responder.get(f"/requests/{req.pk}/").content.decode().replace("\xa0", " ")  # timesince's nbsp
        assert f"({said} after it was asked)" in page

    def test_it_says_less_than_a_minute_for_a_quick_answer(self, world: World) -> None:
        req = new_request(world)
        responder = client_for(world, "responder")
        responder.post(f"/requests/{req.pk}/answer/", {"outcome": "approved"})
        page = responder.get(f"/requests/{req.pk}/").content.decode()
        assert "(less than a minute after it was asked)" in page


class TestContextPanel:
    def test_state_is_a_readable_escaped_tree_and_earlier_requests_are_listed(self, world: World) -> None:
        first = new_request(world, flow_id="run-7", method_name="draft_outline")
        client_for(world, "responder").post(f"/requests/{first.pk}/answer/", {"outcome": "approved"})
        hidden = new_request(world, flow_id="run-7", method_name="secret_step", assign_to="colleague@example.com")
        req = new_request(
            world,
            flow_id="run-7",
            method_name="review_content",
            state={"title": "<script>alert(1)</script>", "account": {"owner": {"email": "a@b.example"}}},
        )
        page = client_for(world, "responder").get(f"/requests/{req.pk}/").content.decode()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
        assert '<span class="tree-key">owner</span>' in page
        assert "Earlier in this run" in page and "draft_outline" in page
        # Earlier requests go through restrict() too: the responder does not see a colleague's.
        assert "secret_step" not in page and str(hidden.pk) not in page

    def test_a_server_side_run_shows_its_step_history(self, world: World) -> None:
        from flows.models import DeploymentFlow

        DeploymentFlow.objects.create(deployment=world.deployment, flow_name="content_approval")
        response = world.client_for("key").post(
            f"/api/v1/deployments/{world.deployment.pk}/kickoff/", {"flow": "content_approval"}, format="json"
        )
        run_id = response.json()["execution_id"]
        req = HITLRequest.objects.get(flow_id=run_id)
        page = client_for(world, "manager").get(f"/requests/{req.pk}/").content.decode()
        history = page[page.index("Run history") :]
        assert history.index("<code>generate_content</code>") < history.index("<code>review_content</code>")
        assert f'<code class="small">{run_id}</code>' in page

    def test_markdown_is_rendered_sanitised_and_highlighted(self, world: World) -> None:
        req = new_request(
            world,
            content="## Title\n\n```python\nx = 1\n```\n\n<img src=x onerror=alert(1)> [a](javascript:alert(1))",
        )
        page = client_for(world, "responder").get(f"/requests/{req.pk}/").content.decode()
        assert "<h2>Title</h2>" in page and 'class="codehilite"' in page
        assert "onerror" not in page and "javascript:" not in page


class TestInbox:
    def test_it_lists_what_each_persona_may_see(self, world: World) -> None:
        mine = new_request(world, message="Mine")
        colleague = new_request(world, message="Colleague's", assign_to="colleague@example.com")
        elsewhere = other_deployment_request(world)
        responder_page = client_for(world, "responder").get("/inbox/").content.decode()
        assert str(mine.pk) in responder_page and str(colleague.pk) not in responder_page
        manager_page = client_for(world, "manager").get("/inbox/").content.decode()
        assert str(mine.pk) in manager_page and str(colleague.pk) in manager_page
        for page in (responder_page, manager_page):
            assert str(elsewhere.pk) not in page
        stranger = client_for(world, "stranger").get("/inbox/")
        assert stranger.status_code == 200 and "All caught up." in stranger.content.decode()
        assert Client().get("/inbox/")["Location"] == "/accounts/login/?next=/inbox/"

    def test_filters_search_and_counts(self, world: World) -> None:
        a = new_request(world, message="Refund order 1", flow_name="refunds", method_name="approve_refund")
        b = new_request(world, message="Publish post", flow_name="content", method_name="review_content")
        client = client_for(world, "manager")
        world.client_for("key").post(f"/api/v1/requests/{b.pk}/respond/", {"outcome": "approved"}, format="json")

        def ids(query: str) -> set[str]:
            page = client.get(f"/inbox/?{query}").content.decode()
            return set(re.findall(r'href="/requests/([0-9a-f-]{36})/"', page))

        assert ids("") == {str(a.pk)}  # pending by default
        assert ids("status=responded") == {str(b.pk)}
        assert ids("status=all") == {str(a.pk), str(b.pk)}
        assert ids("status=all&method=review") == {str(b.pk)}
        assert ids("status=all&flow=refunds") == {str(a.pk)}
        assert ids("status=all&q=publish") == {str(b.pk)}
        assert ids(f"status=all&q={a.pk}") == {str(a.pk)}
        assert ids(f"status=all&deployment={world.deployment.pk}") == {str(a.pk), str(b.pk)}
        assert ids("status=all&mine=on") == set()  # the manager has nothing assigned to them
        assert ids("status=bogus&deployment=999999") == {str(a.pk)}  # bad filters fall back to defaults
        page = client.get("/inbox/").content.decode()
        assert re.search(r"Pending <span class=\"count\">1</span>", page)
        assert re.search(r"Responded <span class=\"count\">1</span>", page)
        assert re.search(r"All <span class=\"count\">2</span>", page)

    def test_overdue_and_sla_are_visible_and_filterable(self, world: World) -> None:
        world.deployment.sla_target_minutes = 30
        world.deployment.save()
        late = new_request(world, message="Late one")
        HITLRequest.objects.filter(pk=late.pk).update(sla_due_at=timezone.now() - timedelta(minutes=5))
        on_time = new_request(world, message="On time")
        client = client_for(world, "responder")
        page = client.get("/inbox/").content.decode()
        assert "1 overdue" in page and "Overdue 5 min" in page and "SLA in 29 min" in page
        overdue_page = client.get("/inbox/?overdue=on").content.decode()
        assert str(late.pk) in overdue_page and str(on_time.pk) not in overdue_page

    def test_it_paginates_in_a_constant_number_of_queries(
        self, world: World, django_assert_max_num_queries: Any
    ) -> None:
        for i in range(30):
            new_request(world, message=f"Request {i}")
        client = client_for(world, "manager")
        client.get("/inbox/")  # warm caches (content types, session)
        with django_assert_max_num_queries(11):
            first = client.get("/inbox/").content.decode()
        assert "1–25 of 30" in first and "Older" in first
        second = client.get("/inbox/?page=2").content.decode()
        assert len(re.findall(r'href="/requests/', second)) == 5


class TestManagerActions:
    def test_reassign_cancel_resend_are_for_managers(self, world: World) -> None:
        req = new_request(world)
        manager = client_for(world, "manager")
        mail.outbox.clear()
        manager.post(f"/requests/{req.pk}/reassign/", {"reassign-email": "Lead@Example.com", "reassign-note": "cover"})
        req.refresh_from_db()
        assert (req.assigned_to_email, req.assignment_step) == ("lead@example.com", AssignmentStep.REASSIGNED)
        assert AuditEvent.objects.get(event_type="request.reassigned").data["note"] == "cover"
        assert [m.to for m in mail.outbox] == [["lead@example.com"]]

        manager.post(f"/requests/{req.pk}/resend/")
        assert [m.to for m in mail.outbox][-1] == ["lead@example.com"]

        manager.post(f"/requests/{req.pk}/cancel/", {"reason": "no longer needed"})
        resolution = Resolution.objects.get(request=req)
        assert (resolution.status, resolution.source, resolution.responder) == (
            "cancelled",
            "dashboard",
            "manager@example.com",
        )

    def test_the_manager_action_permission_trio(self, world: World) -> None:
        req = new_request(world)
        elsewhere = other_deployment_request(world)
        responder = client_for(world, "responder")  # may view and answer, not manage
        stranger = client_for(world, "stranger")
        manager = client_for(world, "manager")
        for action, data in (("reassign", {"reassign-email": "x@example.com"}), ("cancel", {}), ("resend", {})):
            assert responder.post(f"/requests/{req.pk}/{action}/", data).status_code == 403, action
            assert stranger.post(f"/requests/{req.pk}/{action}/", data).status_code == 404, action
            assert manager.post(f"/requests/{elsewhere.pk}/{action}/", data).status_code == 404, action
        req.refresh_from_db()
        assert req.is_pending and req.assigned_to_email == RESPONDER
        assert "Reassign to" not in responder.get(f"/requests/{req.pk}/").content.decode()
        assert "Reassign to" in manager.get(f"/requests/{req.pk}/").content.decode()

    def test_a_bad_email_is_reported_not_applied(self, world: World) -> None:
        req = new_request(world)
        response = client_for(world, "manager").post(
            f"/requests/{req.pk}/reassign/", {"reassign-email": "not-an-email"}, follow=True
        )
        assert "give a valid email address" in response.content.decode()
        req.refresh_from_db()
        assert req.assigned_to_email == RESPONDER


class TestDelegation:
    def test_the_assignee_hands_over_and_it_is_audited(self, world: World) -> None:
        req = new_request(world)
        mail.outbox.clear()
        response = client_for(world, "responder").post(
            f"/requests/{req.pk}/delegate/", {"delegate-email": "bob@example.com", "delegate-note": "on leave"}
        )
        assert response.status_code == 302 and response["Location"] == "/r/done/"
        req.refresh_from_db()
        assert (req.assigned_to_email, req.assignment_step) == ("bob@example.com", AssignmentStep.DELEGATED)
        event = AuditEvent.objects.get(event_type="request.reassigned")
        assert event.actor == RESPONDER and event.data["delegated"] is True and event.data["note"] == "on leave"
        assert [m.to for m in mail.outbox] == [["bob@example.com"]]
        # The responder no longer sees it; it is Bob's now.
        assert client_for(world, "responder").get(f"/requests/{req.pk}/").status_code == 403

    def test_the_delegate_permission_trio(self, world: World) -> None:
        req = new_request(world)
        elsewhere = other_deployment_request(world)
        data = {"delegate-email": "bob@example.com"}
        # A manager is not the assignee: they reassign instead.
        assert client_for(world, "manager").post(f"/requests/{req.pk}/delegate/", data).status_code == 403
        assert client_for(world, "stranger").post(f"/requests/{req.pk}/delegate/", data).status_code == 404
        assert client_for(world, "responder").post(f"/requests/{elsewhere.pk}/delegate/", data).status_code == 404
        req.refresh_from_db()
        assert req.assigned_to_email == RESPONDER


class TestMagicLinks:
    def test_get_shows_and_changes_nothing_post_answers(self, world: World) -> None:
        req = new_request(world, assign_to=OUTSIDE_EMAILER)
        path = link_path(req)
        client = Client()
        for _ in range(3):  # a mail scanner, a preview, the person
            response = client.get(path)
            assert response.status_code == 200
            assert OUTSIDE_EMAILER in response.content.decode()
        assert HITLRequest.objects.get(pk=req.pk).is_pending
        response = client.post(path, {"outcome": "approved", "feedback": "ok"})
        assert response.status_code == 302 and response["Location"] == f"/requests/{req.pk}/"
        resolution = Resolution.objects.get(request=req)
        assert (resolution.responder, resolution.source) == (OUTSIDE_EMAILER, "dashboard")
        # The session marker lets the person see the answered request, and only that one.
        assert "Answered" in client.get(f"/requests/{req.pk}/").content.decode()
        other = new_request(world, assign_to=OUTSIDE_EMAILER)
        assert client.get(f"/requests/{other.pk}/").status_code == 302  # to sign-in: no marker for it
        assert client.get("/inbox/").status_code == 302

    def test_tampered_and_foreign_links_are_404(self, world: World) -> None:
        req = new_request(world, assign_to=OUTSIDE_EMAILER)
        other = new_request(world, assign_to=OUTSIDE_EMAILER)
        path = link_path(req)
        _, r, rid, email_b64, token, _ = path.split("/")
        assert Client().get(f"/r/{other.pk}/{email_b64}/{token}/").status_code == 404
        assert Client().get(f"/r/{rid}/{encode_email('boss@example.com')}/{token}/").status_code == 404
        assert Client().get(f"/r/{rid}/{email_b64}/{token[:-2]}xx/").status_code == 404
        assert Client().get(f"/r/{rid}/!!!/{token}/").status_code == 404
        assert Client().post(f"/r/{other.pk}/{email_b64}/{token}/", {"outcome": "approved"}).status_code == 404
        assert not Resolution.objects.exists()

    def test_a_link_stops_working_when_the_request_goes_to_someone_else(self, world: World) -> None:
        req = new_request(world, assign_to=OUTSIDE_EMAILER)
        path = link_path(req)
        client = Client()
        client.post(f"{path}delegate/", {"delegate-email": "carol@example.com"})
        req.refresh_from_db()
        assert req.assigned_to_email == "carol@example.com"
        response = client.get(path)
        assert response.status_code == 403 and "no longer yours to answer" in response.content.decode()
        assert client.post(path, {"outcome": "approved"}).status_code == 403
        assert not Resolution.objects.exists()

    def test_a_signed_in_user_with_a_link_is_still_only_the_link_for_it(self, world: World) -> None:
        req = new_request(world, assign_to=OUTSIDE_EMAILER)
        client = client_for(world, "stranger")
        assert client.get(link_path(req)).status_code == 200
        client.post(link_path(req), {"outcome": "rejected"})
        assert Resolution.objects.get().responder == OUTSIDE_EMAILER

    def test_an_expired_link_offers_a_fresh_one_sent_only_to_the_assignee(self, world: World) -> None:
        req = new_request(world, assign_to=OUTSIDE_EMAILER)
        token = signing.sign(MAGIC_PURPOSE, str(req.pk), OUTSIDE_EMAILER, ttl=60, since=time.time() - 120)
        path = f"/r/{req.pk}/{encode_email(OUTSIDE_EMAILER)}/{token}/"
        response = Client().get(path)
        assert response.status_code == 410 and "Send me a fresh link" in response.content.decode()
        assert Client().post(path, {"outcome": "approved"}).status_code == 410
        mail.outbox.clear()
        response = Client().post(f"{path}fresh/", follow=True)
        assert response.redirect_chain == [("/r/done/", 302)]
        assert "We sent a fresh link to o•••••••@partner.example" in response.content.decode()
        assert [m.to for m in mail.outbox] == [[OUTSIDE_EMAILER]]
        # The link is built from HITL_BASE_URL, never from the Host the request came in on.
        assert f"https://hitl.example.test/r/{req.pk}/" in mail.outbox[0].body

    def test_fresh_links_are_rate_limited(self, world: World) -> None:
        req = new_request(world, assign_to=OUTSIDE_EMAILER)
        token = signing.sign(MAGIC_PURPOSE, str(req.pk), OUTSIDE_EMAILER, ttl=60, since=time.time() - 120)
        fresh = f"/r/{req.pk}/{encode_email(OUTSIDE_EMAILER)}/{token}/fresh/"
        mail.outbox.clear()
        codes = [Client().post(fresh).status_code for _ in range(5)]
        assert codes == [302, 302, 302, 429, 429]
        assert len(mail.outbox) == 3

    def test_a_fresh_link_for_someone_no_longer_assigned_is_refused(self, world: World) -> None:
        req = new_request(world, assign_to=OUTSIDE_EMAILER)
        token = signing.sign(MAGIC_PURPOSE, str(req.pk), OUTSIDE_EMAILER, ttl=60, since=time.time() - 120)
        client_for(world, "manager").post(f"/requests/{req.pk}/reassign/", {"reassign-email": "new@example.com"})
        mail.outbox.clear()
        path = f"/r/{req.pk}/{encode_email(OUTSIDE_EMAILER)}/{token}/"
        assert Client().post(f"{path}fresh/").status_code == 403
        assert mail.outbox == []


class TestSignIn:
    def test_reviewers_sign_in_on_a_proper_page_and_land_in_the_inbox(self, world: World) -> None:
        client = Client()
        page = client.get("/accounts/login/?next=/inbox/")
        assert page.status_code == 200 and b"Sign in to review" in page.content
        response = client.post("/accounts/login/", {"username": "responder", "password": "pw", "next": "/inbox/"})
        assert response["Location"] == "/inbox/"
        assert client.get("/").status_code == 302
        assert client.post("/accounts/logout/").status_code == 302
        assert client.get("/inbox/").status_code == 302
