"""The admin for ops staff: one module per subject; importing them registers their ModelAdmins."""

from hitl.admin import deployments, inbound, requests, rules, webhooks

__all__ = ["deployments", "inbound", "requests", "rules", "webhooks"]
