from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from hitl.inbound import dev_mailbox
from hitl.mcp.server import endpoint as mcp_endpoint
from hitl.views import health
from hitl.views.signin import ThrottledAuthenticationForm

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True, authentication_form=ThrottledAuthenticationForm),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include(("hitl.api.urls", "api"), namespace="api")),
    path("mcp/", mcp_endpoint, name="mcp"),  # the MCP server (SPEC §15), streamable HTTP
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view loads its init script from this same URL (?script=), so the page has no inline
    # script and runs under the Content-Security-Policy (script-src 'self').
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("analytics/", include("hitl.analytics.urls")),
    # Anymail's inbound (and tracking) webhooks: /anymail/<esp>/inbound/, protected by
    # ANYMAIL_WEBHOOK_SECRET (basic auth) and, where the ESP signs, its signing key.
    path("anymail/", include("anymail.urls")),
    # Development mailbox: 404 unless DEBUG.
    path("dev/mailbox/", dev_mailbox.mailbox, name="dev-mailbox"),
    path("dev/mailbox/<str:name>/", dev_mailbox.message, name="dev-mailbox-message"),
    # Reviewer pages: inbox, review page, magic links (hitl.page_urls).
    path("", include("hitl.views.urls")),
]

handler404 = "hitl.views.errors.not_found"
handler500 = "hitl.views.errors.error"
