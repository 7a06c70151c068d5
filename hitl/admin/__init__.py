"""The admin for ops staff: one module per subject; importing them registers their ModelAdmins."""

from django.contrib import admin

from hitl.admin import deployments, inbound, notifications, requests, rules, webhooks
from hitl.views.signin import ThrottledAdminAuthenticationForm

admin.site.login_form = ThrottledAdminAuthenticationForm  # sign-in throttled as /accounts/login/ is

__all__ = ["deployments", "inbound", "notifications", "requests", "rules", "webhooks"]
