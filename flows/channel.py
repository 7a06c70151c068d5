"""When a request a flow run waits on resolves (any channel, or its timeout), the run resumes."""

from __future__ import annotations

from hitl.channels.base import Channel, Event
from hitl.models import HITLRequest


class FlowChannel(Channel):
    name = "flow"
    events = frozenset(Event.RESOLVED_BY_STATUS.values())

    def wants(self, request: HITLRequest, event: str) -> bool:
        from flows.models import FlowRun

        return event in self.events and FlowRun.objects.filter(pending_request_id=request.pk).exists()

    def notify(self, request: HITLRequest, event: str) -> None:
        from flows.engine import resume_after_request

        resume_after_request(request.pk)
