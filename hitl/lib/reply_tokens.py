"""Reply-To tokens: `reply+<token>@<HITL_INBOUND_DOMAIN>` (SPEC §4).

token = <request id, base32, 26> "-" <expiry, base36> "-" <HMAC, base32, 20>; the local part stays
under RFC 5321's 64 characters and is all lower-case, so mail systems that fold case don't break it.
The MAC covers the request, the authorised email and the request's state ("pending", plus the
assignment version once reassigned), so a token can only ever answer a pending request for the address
it was sent to, in the assignment it was sent for. Verification is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import uuid
from dataclasses import dataclass
from enum import Enum

from django.conf import settings

from hitl.lib.signing import b36, secret_keys

LOCAL_PREFIX = "reply+"
_TOKEN = re.compile(r"^([a-z2-7]{26})-([0-9a-z]{1,8})-([a-z2-7]{20})$")
_ADDRESS = re.compile(r"reply\+([a-z2-7]{26}-[0-9a-z]{1,8}-[a-z2-7]{20})@([a-z0-9.\-]+)", re.IGNORECASE)


class Verdict(Enum):
    VALID = "valid"
    FORGED = "forged"  # malformed, or signed for another request / another address / nothing
    WRONG_SENDER = "wrong_sender"  # authentic, but for the assignee, and someone else sent it
    EXPIRED = "expired"


@dataclass(frozen=True)
class ParsedToken:
    raw: str
    request_id: uuid.UUID
    expires: int
    mac: str


def _encode_id(request_id: uuid.UUID) -> str:
    return base64.b32encode(request_id.bytes).decode().lower().rstrip("=")


def _mac(request_id: uuid.UUID, email: str, state: str, expires: str, secret: str | None = None) -> str:
    secret = settings.SECRET_KEY if secret is None else secret
    key = hashlib.sha256(f"hitl.reply-token:{secret}".encode()).digest()
    message = "\x1f".join((str(request_id), email.strip().lower(), state, expires)).encode()
    return base64.b32encode(hmac.new(key, message, hashlib.sha256).digest()[:12]).decode().lower()[:20]


def token_state(status: str, assignment_version: int = 0) -> str:
    """The state a token's MAC binds: the status, and the assignment it was issued for (version 0 adds
    nothing, so the tokens of never-reassigned requests minted before versions stay valid)."""
    return f"{status}#{assignment_version}" if assignment_version else status


def make_token(request_id: uuid.UUID, email: str, *, state: str = "pending", ttl: int | None = None) -> str:
    lifetime = settings.HITL_REPLY_TOKEN_TTL if ttl is None else ttl
    expires = b36(int(time.time()) + lifetime)
    return f"{_encode_id(request_id)}-{expires}-{_mac(request_id, email, state, expires)}"


def reply_address(request_id: uuid.UUID, email: str, assignment_version: int = 0) -> str:
    token = make_token(request_id, email, state=token_state("pending", assignment_version))
    address = f"{LOCAL_PREFIX}{token}@{settings.HITL_INBOUND_DOMAIN}"
    assert len(address.split("@")[0]) <= 64  # RFC 5321 §4.5.3.1.1
    return address


def parse_token(token: str) -> ParsedToken | None:
    match = _TOKEN.match(token.lower())
    if not match:
        return None
    try:
        request_id = uuid.UUID(bytes=base64.b32decode(match[1].upper() + "======"))
    except (ValueError, TypeError):
        return None
    # Base32 of 16 bytes leaves 2 spare bits in the last character: accept only the canonical
    # spelling (and the canonical expiry), so no altered token is ever taken.
    if _encode_id(request_id) != match[1] or b36(int(match[2], 36)) != match[2]:
        return None
    return ParsedToken(token.lower(), request_id, int(match[2], 36), match[3])


def find_token(addresses: list[str]) -> ParsedToken | None:
    """The first reply token addressed to our inbound domain among `addresses` (header values)."""
    domain = settings.HITL_INBOUND_DOMAIN.lower()
    for value in addresses:
        for match in _ADDRESS.finditer(value or ""):
            if match[2].lower() == domain:
                parsed = parse_token(match[1])
                if parsed:
                    return parsed
    return None


def check(token: ParsedToken, *, sender: str, authorised: str, state: str = "pending") -> Verdict:
    """Verify `token` for `sender`; tell a wrong sender apart from a forgery using the authorised email."""
    expires = b36(token.expires)

    def signed_for(email: str) -> bool:
        # Any key of SECRET_KEY and SECRET_KEY_FALLBACKS: addresses mailed before a rotation still work.
        return any(
            hmac.compare_digest(_mac(token.request_id, email, state, expires, secret), token.mac)
            for secret in secret_keys()
        )

    if signed_for(sender):
        # Expired only for the sender it was made for: anyone else is told "not the assignee".
        return Verdict.EXPIRED if token.expires < time.time() else Verdict.VALID
    if signed_for(authorised):
        return Verdict.WRONG_SENDER
    return Verdict.FORGED


def redact(text: str) -> str:
    """Remove reply tokens from text that goes to logs or the audit log."""
    return _ADDRESS.sub(lambda m: f"reply+[redacted]@{m[2]}", text or "")
