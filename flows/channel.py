"""When a request a flow run waits on resolves (any channel, or its timeout), the run resumes."""

from __future__ import annotations

from flows.engine.human import resume_after_request
from flows.models import FlowRun
from hitl.channels.base import Channel, Event
from hitl.models import HITLRequest


class FlowChannel(Channel):
    name = "flow"
    events = frozenset(Event.RESOLVED_BY_STATUS.values())

    def wants(self, request: HITLRequest, event: str) -> bool:
        # A run waits only on the request its engine created, whose flow_id is the run's id
        # (`flows.engine.human._create_review`): a request without a flow_id needs no query.
        if event not in self.events or not request.flow_id:
            return False
        return FlowRun.objects.filter(pending_request_id=request.pk).exists()

    def notify(self, request: HITLRequest, event: str) -> None:
        resume_after_request(request.pk)
