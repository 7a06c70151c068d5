"""Every state change of a request, one function each (house style: verb_noun, atomic, audited).

Callers import from here; each subject has its module: `create`, `answers` (reading an answer),
`resolve` (every way a request leaves pending, exactly once), `assign` (reassignment, delegation),
`deadlines` (SLA, reminders, escalation), `notify`, `rules`, `sweep` (the minute pass), `keys`.
"""

from hitl.services.answers import MAX_FEEDBACK, Answer, interpret_answer
from hitl.services.assign import delegate_request, reassign_request
from hitl.services.bounces import record_bounce
from hitl.services.create import create_request
from hitl.services.deadlines import escalate_request, mark_overdue, remind_assignee
from hitl.services.decisions import DecisionRefused, addressed_to, capability_for, refuse_decision
from hitl.services.identities import telegram_approver
from hitl.services.notify import resend_notification
from hitl.services.resolve import cancel_request, describe_resolution, expire_request, respond_to_request
from hitl.services.rules import add_routing_rule

__all__ = [
    "MAX_FEEDBACK",
    "Answer",
    "DecisionRefused",
    "capability_for",
    "add_routing_rule",
    "addressed_to",
    "cancel_request",
    "create_request",
    "delegate_request",
    "describe_resolution",
    "escalate_request",
    "expire_request",
    "interpret_answer",
    "mark_overdue",
    "reassign_request",
    "record_bounce",
    "refuse_decision",
    "remind_assignee",
    "resend_notification",
    "respond_to_request",
    "telegram_approver",
]
