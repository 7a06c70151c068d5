"""A real CrewAI flow paused through our provider and resumed by our resumer. Runs in a separate
virtualenv that has crewai (never the server's): `.ci/run` makes it and sets CREWAI_PYTHON.

    python crewai_flow.py kickoff <base_url> <api_key> <persistence.db>   → prints the flow id
    python crewai_flow.py resume  <base_url> <api_key> <persistence.db> <flow_id> → prints what ran
"""

from __future__ import annotations

import json
import sys

from crewai.flow.async_feedback import HumanFeedbackPending
from crewai.flow.flow import Flow, listen, start
from crewai.flow.human_feedback import HumanFeedbackResult, human_feedback
from crewai.flow.persistence.sqlite import SQLiteFlowPersistence

import hitl_client
from hitl_client import HitlClient
from hitl_client.crewai import HitlResumer, install

# The installed distribution (make crewai-venv), not a copy of the checkout on the path.
assert "site-packages" in hitl_client.__file__, hitl_client.__file__

RAN: list[str] = []


class PostReviewFlow(Flow):
    @start()
    def draft(self):
        self.state["topic"] = "durable HITL"
        return "A post about durable human review."

    @human_feedback(message="Publish this post?", emit=["approved", "rejected"])
    @listen(draft)
    def review(self, draft):
        return draft

    @listen("approved")
    def publish(self, result: HumanFeedbackResult):
        RAN.append(f"publish:{result.outcome}:{result.feedback}")

    @listen("rejected")
    def archive(self, result: HumanFeedbackResult):
        RAN.append(f"archive:{result.outcome}:{result.feedback}")


def main() -> None:
    phase, base_url, api_key, db = sys.argv[1:5]
    client = HitlClient(base_url, api_key)
    persistence = SQLiteFlowPersistence(db)
    install(client, assign_to="writer@example.com")
    if phase == "kickoff":
        flow = PostReviewFlow(persistence=persistence)
        paused = flow.kickoff()
        assert isinstance(paused, HumanFeedbackPending), paused
        print(json.dumps({"flow_id": paused.context.flow_id, "request_id": paused.callback_info["hitl_request_id"]}))
    else:
        HitlResumer(client, [PostReviewFlow], persistence).wait_and_resume(sys.argv[5], timeout=30)
        print(json.dumps({"ran": RAN}))


if __name__ == "__main__":
    main()
