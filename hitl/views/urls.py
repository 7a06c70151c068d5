"""Reviewer pages (namespace `hitl`). Magic links are `/r/<request>/<email b64>/<token>/`, the shape
`hitl.lib.links.magic_link_url` builds."""

from django.urls import path

from hitl.inbound import slack, telegram
from hitl.views import inbox, magic, review

app_name = "hitl"

urlpatterns = [
    path("", review.home, name="home"),
    path("inbox/", inbox.inbox, name="inbox"),
    path("requests/<uuid:request_id>/", review.review_page, name="review"),
    path("requests/<uuid:request_id>/answer/", review.answer, name="answer"),
    path("requests/<uuid:request_id>/reassign/", review.reassign, name="reassign"),
    path("requests/<uuid:request_id>/cancel/", review.cancel, name="cancel"),
    path("requests/<uuid:request_id>/resend/", review.resend, name="resend"),
    path("requests/<uuid:request_id>/delegate/", review.delegate, name="delegate"),
    path("r/done/", review.done, name="done"),
    path("r/<uuid:request_id>/<str:email_b64>/<str:token>/", magic.magic_link, name="magic-link"),
    path("r/<uuid:request_id>/<str:email_b64>/<str:token>/fresh/", magic.magic_fresh, name="magic-fresh"),
    path("r/<uuid:request_id>/<str:email_b64>/<str:token>/delegate/", magic.magic_delegate, name="magic-delegate"),
    path("telegram/<int:deployment_id>/webhook/", telegram.telegram_webhook, name="telegram-webhook"),
    path("slack/<int:deployment_id>/interactions/", slack.slack_interactions, name="slack-interactions"),
]
