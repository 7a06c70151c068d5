"""Magic links (SPEC §4): `/r/<request id>/<email, urlsafe base64>/<token>/` from `hitl.lib.links`.

The token is the credential: it names the request and the email and expires after the request's link
TTL. Opening the link (GET) only shows the page; answering (POST) acts, and leaves a marker in the
session — scoped to that one request, expiring with the token — so the follow-up pages (the answered
request, delegation) work without carrying the token around. Whoever holds the marker is a
`LinkPrincipal`, and `restrict()` still checks on every page that the request is assigned to its email.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from typing import Any

from accounts.lib.access import LinkPrincipal
from hitl.lib import signing
from hitl.lib.addresses import clean_email
from hitl.lib.links import MAGIC_PURPOSE, magic_parts
from hitl.models import Approver, HITLRequest

SESSION_KEY = "hitl_links"
MAX_EARLIER = 20  # how many earlier assignments a superseded link is recognised from (then: invalid)
MAX_MARKERS = 50  # a session never grows without bound, whatever a visitor opens


@dataclass(frozen=True)
class LinkCheck:
    # "ok", "expired" (signature good, lifetime over), "superseded" (issued for an earlier assignment of
    # the request: reassigned since, even back to the same address) or "invalid"
    state: str
    email: str = ""
    expires: int = 0
    assignment_version: int = 0

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def principal(self, request_id: Any) -> LinkPrincipal:
        return LinkPrincipal(str(request_id), self.email, self.assignment_version)


def encode_email(email: str) -> str:
    return base64.urlsafe_b64encode(email.lower().encode()).decode().rstrip("=")


def decode_email(encoded: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return clean_email(raw)


def check(request_id: Any, encoded_email: str, token: str) -> LinkCheck:
    """Verify a magic link's parts against the request's current assignment. A bad signature and a
    malformed email are both "invalid"; a genuine link of an earlier assignment is "superseded"."""
    email = decode_email(encoded_email)
    if email is None:
        return LinkCheck("invalid")
    row = HITLRequest.objects.filter(pk=request_id).values_list("assignment_version", "policy").first()
    version = row[0] if row else 0
    if row and row[1]:
        # Several approvers (SPEC §13): a link is bound to its approver's seat, whose version it carries.
        seat = Approver.objects.filter(request__pk=request_id, email=email, active=True).values_list("version").first()
        if seat is not None:
            version = seat[0]
    try:
        signing.verify(token, MAGIC_PURPOSE, *magic_parts(request_id, email, version))
    except signing.TokenExpired:
        return LinkCheck("expired", email, assignment_version=version)
    except signing.TokenInvalid:
        return LinkCheck("superseded", email) if _earlier(request_id, email, token, version) else LinkCheck("invalid")
    return LinkCheck("ok", email, int(token.partition(".")[0], 36), version)


def _earlier(request_id: Any, email: str, token: str, version: int) -> bool:
    """Whether `token` is a genuine link of one of the request's recent earlier assignments."""
    for earlier in range(version - 1, max(version - MAX_EARLIER, 0) - 1, -1):
        try:
            signing.verify(token, MAGIC_PURPOSE, *magic_parts(request_id, email, earlier))
        except signing.TokenExpired:
            return True
        except signing.TokenInvalid:
            continue
        return True
    return False


def remember(session: Any, request_id: Any, link: LinkCheck) -> None:
    """Leave the session marker for this request (after a POST through a valid link)."""
    now = time.time()
    markers = {k: v for k, v in session.get(SESSION_KEY, {}).items() if v.get("exp", 0) > now}
    markers[str(request_id)] = {"email": link.email, "exp": link.expires, "v": link.assignment_version}
    if len(markers) > MAX_MARKERS:
        markers = dict(sorted(markers.items(), key=lambda item: item[1]["exp"])[-MAX_MARKERS:])
    session[SESSION_KEY] = markers


def session_principal(session: Any, request_id: Any) -> LinkPrincipal | None:
    marker = session.get(SESSION_KEY, {}).get(str(request_id))
    if not marker or marker.get("exp", 0) <= time.time():
        return None
    return LinkPrincipal(str(request_id), str(marker.get("email", "")), int(marker.get("v", 0)))
