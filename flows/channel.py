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
        return event in self.events and FlowRun.objects.filter(pending_request_id=request.pk).exists()

    def notify(self, request: HITLRequest, event: str) -> None:
        resume_after_request(request.pk)
