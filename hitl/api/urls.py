from django.urls import include, path
from rest_framework.routers import SimpleRouter

from audit.api.views import AuditExportView
from hitl.analytics.api import AnalyticsView
from hitl.api.version import VersionView
from hitl.api.views import CallbackView, RequestViewSet

router = SimpleRouter()
router.register("requests", RequestViewSet, basename="request")

urlpatterns = [
    path("version/", VersionView.as_view(), name="version"),
    path("callbacks/<uuid:request_id>/<str:token>/", CallbackView.as_view(), name="request-callback"),
    path("analytics/", AnalyticsView.as_view(), name="analytics"),
    path("audit/", AuditExportView.as_view(), name="audit-export"),
    path("", include("flows.api.urls")),
    *router.urls,
]
