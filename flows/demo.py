"""The demo flows loaded by `make run` (SPEC §8): content approval (the seed's example, imports changed
only), an article picker (choices) and an expense approval (routed by amount)."""

from __future__ import annotations

import logging

from flows.registry import register
from flows.runtime import Flow, HumanFeedbackResult, human_feedback, listen, or_, start

logger = logging.getLogger(__name__)


@register("content_approval")
class ContentApprovalFlow(Flow):
    @start()
    def generate_content(self):
        return "Generated marketing copy for Q1 campaign..."

    @human_feedback(
        message="Please review this content for brand compliance:",
        emit=["approved", "rejected", "needs_revision"],
    )
    @listen(or_("generate_content", "needs_revision"))
    def review_content(self):
        return "Marketing copy for review..."

    @listen("approved")
    def publish_content(self, result: HumanFeedbackResult):
        print(f"Publishing approved content. Reviewer notes: {result.feedback}")

    @listen("rejected")
    def archive_content(self, result: HumanFeedbackResult):
        print(f"Content rejected. Reason: {result.feedback}")


ARTICLES = [
    {
        "title": "Durable workflows without a workflow engine",
        "url": "https://example.com/durable",
        "summary": "Queues, leases and idempotent steps.",
    },
    {
        "title": "Email is still the universal inbox",
        "url": "https://example.com/email",
        "summary": "Why reviewers answer by reply.",
    },
    {
        "title": "Auditing AI decisions",
        "url": "https://example.com/audit",
        "summary": "Hash chains for the rest of us.",
    },
]


@register("article_picker")
class ArticlePickerFlow(Flow):
    """An "RSS" step fetches items (a local list here); a person picks the one to research."""

    @start()
    def rss(self):
        return {"items": ARTICLES}

    @human_feedback(
        message="Which article should we research next?",
        mode="choices",
        options="rss.items",
        label_path="title",
        value_path="url",
        description_path="summary",
    )
    @listen("rss")
    def pick_article(self, feed):
        return f"{len(feed['items'])} new articles"

    @listen("pick_article")
    def research(self, result: HumanFeedbackResult):
        self.state["picked"] = result.choice.get("value")
        return {"researching": result.choice.get("label")}


@register("expense_approval")
class ExpenseApprovalFlow(Flow):
    """Approval mode; the deployment's routing rule on `amount` (e.g. >= 10000 → finance) picks the
    approver. A rejection ends the run as completed with the payment step skipped."""

    @start()
    def prepare(self):
        self.state.setdefault("amount", 0)
        currency, description = self.state.get("currency", "EUR"), self.state.get("description", "")
        currency, description = self.state.get("currency", "EUR"), self.state.get("description", "")
        return f"Expense of {self.state['amount']} {currency}: {description}"

    @human_feedback(message="Approve this expense?", mode="approval")
    @listen("prepare")
    def approve_expense(self, summary):
        return summary

    @listen("approve_expense")
    def pay(self, result: HumanFeedbackResult):
        self.state["paid"] = True
        return {"paid": self.state["amount"], "approved_by": result.responder}
