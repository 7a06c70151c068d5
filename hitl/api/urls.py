from django.urls import include, path
from rest_framework.routers import SimpleRouter

from hitl.api.views import CallbackView, RequestViewSet

router = SimpleRouter()
router.register("requests", RequestViewSet, basename="request")

urlpatterns = [
    path("callbacks/<uuid:request_id>/<str:token>/", CallbackView.as_view(), name="request-callback"),
    path("", include("flows.api.urls")),
    *router.urls,
]
