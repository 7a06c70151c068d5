"""A user's own flow module, as `HITL_FLOW_MODULES` names it (tests/flows/test_flow_modules.py)."""

from flows.registry import register
from flows.runtime import Flow, start


@register("user_own_flow")
class UserOwnFlow(Flow):
    @start()
    def hello(self):
        return "hello"
