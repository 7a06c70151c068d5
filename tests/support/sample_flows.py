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


@register("test_killed_mid_step")
class KilledMidStepFlow(Flow):
    """For the fault-injection tests (tests/flows/engine/test_flow_faults.py): `work` appends a line to the
    ledger file `<dir>/ledger` (a side effect outside the run, like a call to another system), says it
    started by creating `<dir>/started-<n>`, then blocks until `<dir>/release` exists — long enough for the
    test to SIGKILL its worker. Then a human step, then `finish`."""

    @start()
    def prepare(self):
        self.state["prepared"] = self.state.get("prepared", 0) + 1
        return self.state["dir"]

    @listen("prepare")
    def work(self, directory):
        import time
        from pathlib import Path

        folder = Path(directory)
        with open(folder / "ledger", "a") as ledger:
            ledger.write(f"{self.run_id}\n")
        attempt = len((folder / "ledger").read_text().splitlines())
        (folder / f"started-{attempt}").touch()
        deadline = time.monotonic() + 60
        while not (folder / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        # What the flow's own state says happened: committed once, whatever the body did outside.
        self.state["work_runs"] = self.state.get("work_runs", 0) + 1
        self.state["ledger_lines_seen"] = attempt
        return f"worked (attempt {attempt})"

    @human_feedback(message="Ship the work?", emit=["approved", "rejected"], assign_to="lead@example.com")
    @listen("work")
    def review(self, summary):
        return summary

    @listen("approved")
    def finish(self, result: HumanFeedbackResult):
        self.state["finished"] = self.state.get("finished", 0) + 1
        return result.feedback


@register("test_two_signatures")
class TwoSignaturesFlow(Flow):
    """Several approvers (SPEC §13): two of three must approve, the requester never counts."""

    @start()
    @human_feedback(
        message="Sign off the payment?",
        mode="approval",
        approvers=["ann@example.com", "bob@example.com", "cid@example.com"],
        policy="quorum",
        required=2,
        requested_by="cid@example.com",
    )
    def sign_off(self):
        return "pay 5000 EUR"

    @listen("sign_off")
    def pay(self, result: HumanFeedbackResult):
        self.state["signers"] = [d["responder"] for d in result.decisions] if result.decisions else []
