from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(("hitl.api.urls", "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # Anymail's inbound (and tracking) webhooks: /anymail/<esp>/inbound/, protected by
    # ANYMAIL_WEBHOOK_SECRET (basic auth) and, where the ESP signs, its signing key.
    path("anymail/", include("anymail.urls")),
]
