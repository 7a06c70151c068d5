"""Several approvers on the review page in Chromium (SPEC §13): each approver's own magic link, the
decisions so far and who is still to decide, a decided approver sees their decision, and a quorum of
two of three resolves once with both decisions."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from hitl.models import Decision, HITLRequest, Resolution, Status
from tests.browser.conftest import DESKTOP, Pages, screenshot
from tests.support.base import build_world

pytestmark = pytest.mark.django_db(transaction=True)

POOL = ["ann@partner.example", "bob@partner.example", "cid@partner.example"]


def link_for(to: str) -> str:
    sent = [m for m in mail.outbox if m.to == [to]]
    assert sent, f"no email to {to}: {[m.to for m in mail.outbox]}"
    match = re.search(r"(https?://\S+/r/\S+?/)(?:\s|$)", sent[-1].body)
    assert match, sent[-1].body
    return match.group(1)


class TestPoolReviewPage:
    def test_a_quorum_of_two_decides_on_the_page(self, pages: Pages, site: str) -> None:
        world = build_world()
        mail.outbox.clear()
        created = world.create(
            approvers=POOL, policy="quorum", required=2, message="Sign off the Q3 budget?", requested_by="rex@x.example"
        )
        links = {email: link_for(email) for email in POOL}

        ann = pages.new(DESKTOP)
        ann.goto(links[POOL[0]])
        assert ann.locator("#waiting-list").inner_text().split() == POOL
        ann.get_by_label("Comment").fill("Within plan.")
        ann.get_by_role("button", name="Approved", exact=True).click()
        ann.wait_for_url(f"{site}/requests/{created['id']}/")
        assert "your decision: approved" in ann.locator("#my-decision").inner_text().lower()
        assert "ann@partner.example" in ann.locator("#decision-list").inner_text()
        assert ann.get_by_role("button", name="Approved", exact=True).count() == 0  # decided once: no buttons any more
        assert HITLRequest.objects.get(pk=created["id"]).status == Status.PENDING
        screenshot(ann, "pool-decided-approver")

        # Ann's link opens the page again, showing her decision, never a second chance to decide.
        again = pages.new(DESKTOP)
        again.goto(links[POOL[0]])
        assert "your decision: approved" in again.locator("#my-decision").inner_text().lower()
        assert again.get_by_role("button", name="Rejected", exact=True).count() == 0

        bob = pages.new(DESKTOP)
        bob.goto(links[POOL[1]])
        assert bob.locator("#waiting-list").inner_text().split() == POOL[1:]
        bob.get_by_role("button", name="Approved", exact=True).click()
        bob.wait_for_url(f"{site}/requests/{created['id']}/")
        assert bob.get_by_role("heading", name="Answered").is_visible()

        resolution = Resolution.objects.get(request_id=created["id"])
        assert (resolution.outcome, resolution.responder) == ("approved", POOL[1])
        assert [d["responder"] for d in resolution.result["decisions"]] == POOL[:2]
        assert Decision.objects.filter(request_id=created["id"]).count() == 2
