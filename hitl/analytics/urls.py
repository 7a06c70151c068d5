from django.urls import path

from hitl.analytics import views

urlpatterns = [
    path("", views.page, name="analytics"),
    path("<slug:name>.csv", views.table_csv, name="analytics-csv"),
]
