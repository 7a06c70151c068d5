"""Dev-only pages (DEBUG): read what the server sent and answer it as the recipient, through the same
processing as a real inbound email. With DEBUG off every page here is a 404."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from hitl.inbound.email import process_inbound_email
from hitl.lib import dev_mailbox


def _require_debug() -> None:
    if not settings.DEBUG:
        raise Http404("The dev mailbox exists only with DEBUG on.")


def mailbox(request: HttpRequest) -> HttpResponse:
    _require_debug()
    return render(request, "dev/mailbox.html", {"entries": dev_mailbox.list_messages()})


@require_http_methods(["GET", "POST"])
def message(request: HttpRequest, name: str) -> HttpResponse:
    _require_debug()
    original = dev_mailbox.load(name)
    if original is None:
        raise Http404("No such message.")
    if request.method == "POST":
        reply = dev_mailbox.build_reply(original, request.POST.get("body", ""))
        outcome = process_inbound_email(reply, via="dev-mailbox")
        messages.info(
            request, f"Reply processed: {outcome.outcome} ({outcome.reason}). Check the mailbox for our answer."
        )
        return redirect("dev-mailbox")
    context = {
        "name": name,
        "original": original,
        "text": dev_mailbox.text_of(original),
        "html": dev_mailbox.html_of(original),
        "reply_to": str(original.get("Reply-To") or ""),
        "can_reply": bool(original.get("Reply-To")),
    }
    return render(request, "dev/message.html", context)
