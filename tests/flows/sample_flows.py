"""Flows used only by the tests (registered on import)."""

from __future__ import annotations

from pydantic import BaseModel

from flows.registry import register
from flows.runtime import Flow, HumanFeedbackResult, and_, human_feedback, listen, or_, router, start, task


@register("test_pipeline")
class PipelineFlow(Flow):
    """No human step: routers, and_(), state."""

    @start()
    def fetch(self):
        self.state["log"] = ["fetch"]
        return 7

    @start()
    def configure(self):
        self.state["log"].append("configure") if "log" in self.state else None
        return "cfg"

    @listen(and_("fetch", "configure"))
    def combine(self):
        self.state.setdefault("log", []).append("combine")
        return self.state.get("threshold", 5)

    @router("combine")
    def decide(self, threshold):
        return "big" if threshold > 5 else "small"

    @listen("big")
    def handle_big(self):
        self.state["route"] = "big"

    @listen(or_("small", "never"))
    def handle_small(self):
        self.state["route"] = "small"


@register("test_crew")
class CrewStyleFlow(Flow):
    @start()
    @task(human_input=True, name="research_task")
    def research(self):
        notes = "; ".join(self.task_context) or "none"
        self.state.setdefault("drafts", []).append(notes)
        return f"report (feedback so far: {notes})"

    @listen("research")
    def write(self, report):
        self.state["final"] = report
        return report


class TicketState(BaseModel):
    id: str = ""
    title: str = "untitled"
    priority: int = 1
    decision: str = ""


@register("test_typed_state")
class TypedStateFlow(Flow[TicketState]):
    @start()
    def triage(self):
        self.state.priority += 1
        return self.state.title

    @human_feedback(message="Close this ticket?", mode="approval", assign_to="state.owner_email", timeout=3600)
    @listen("triage")
    def confirm(self, title):
        return f"Ticket: {title}"

    @listen("confirm")
    def close(self, result: HumanFeedbackResult):
        self.state.decision = result.outcome or ""


@register("test_failing")
class FailingFlow(Flow):
    @start()
    def boom(self):
        raise RuntimeError("the model timed out")
