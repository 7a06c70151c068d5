from django.urls import include, path

from .views import baseline

urlpatterns = [
    path("bench/baseline/", baseline, name="bench-baseline"),
    path("", include("hitl.urls")),
]
