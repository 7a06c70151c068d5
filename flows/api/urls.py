from django.urls import path

from flows.api.views import ExecutionView, KickoffView, ResumeView

urlpatterns = [
    path("deployments/<int:deployment_id>/kickoff/", KickoffView.as_view(), name="deployment-kickoff"),
    path("deployments/<int:deployment_id>/resume/", ResumeView.as_view(), name="deployment-resume"),
    path("executions/<uuid:execution_id>/", ExecutionView.as_view(), name="execution-detail"),
]
