"""Reviewer pages (namespace `hitl`). Magic links are `/r/<request>/<email b64>/<token>/`, the shape
`hitl.lib.links.magic_link_url` builds."""

from django.urls import path

from hitl import views

app_name = "hitl"

urlpatterns = [
    path("", views.home, name="home"),
    path("inbox/", views.inbox, name="inbox"),
    path("requests/<uuid:request_id>/", views.review_page, name="review"),
    path("requests/<uuid:request_id>/answer/", views.answer, name="answer"),
    path("requests/<uuid:request_id>/reassign/", views.reassign, name="reassign"),
    path("requests/<uuid:request_id>/cancel/", views.cancel, name="cancel"),
    path("requests/<uuid:request_id>/resend/", views.resend, name="resend"),
    path("requests/<uuid:request_id>/delegate/", views.delegate, name="delegate"),
    path("r/done/", views.done, name="done"),
    path("r/<uuid:request_id>/<str:email_b64>/<str:token>/", views.magic_link, name="magic-link"),
    path("r/<uuid:request_id>/<str:email_b64>/<str:token>/fresh/", views.magic_fresh, name="magic-fresh"),
    path("r/<uuid:request_id>/<str:email_b64>/<str:token>/delegate/", views.magic_delegate, name="magic-delegate"),
    path("telegram/<int:deployment_id>/webhook/", views.telegram_webhook, name="telegram-webhook"),
]
