"""Property tests: any change to a reply token, magic link or callback signature is refused."""

from __future__ import annotations

import time
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from hitl.lib import reply_tokens, signing

ALPHABET = "abcdefghijklmnopqrstuvwxyz234567-0189"
REQUEST_ID = uuid.UUID("6f1c8a52-2b7e-4f0e-9d4c-0a1b2c3d4e5f")
EMAIL = "reviewer@example.com"


def mutate(token: str, index: int, char: str) -> str:
    index %= len(token)
    return token[:index] + char + token[index + 1 :]


class TestReplyTokens:
    @settings(max_examples=300, deadline=None)
    @given(index=st.integers(min_value=0, max_value=200), char=st.sampled_from(ALPHABET))
    def test_any_changed_character_is_refused(self, index: int, char: str) -> None:
        token = reply_tokens.make_token(REQUEST_ID, EMAIL)
        changed = mutate(token, index, char)
        parsed = reply_tokens.parse_token(changed)
        if changed == token:
            assert (
                parsed is not None
                and reply_tokens.check(parsed, sender=EMAIL, authorised=EMAIL) is reply_tokens.Verdict.VALID
            )
            return
        if parsed is None:
            return  # malformed: refused before any check
        # The request id, the expiry and the MAC are all covered: any change is a forgery.
        assert reply_tokens.check(parsed, sender=EMAIL, authorised=EMAIL) is reply_tokens.Verdict.FORGED

    @settings(max_examples=100, deadline=None)
    @given(sender=st.emails())
    def test_another_sender_never_verifies(self, sender: str) -> None:
        token = reply_tokens.parse_token(reply_tokens.make_token(REQUEST_ID, EMAIL))
        assert token is not None
        verdict = reply_tokens.check(token, sender=sender, authorised=EMAIL)
        expected = reply_tokens.Verdict.VALID if sender.lower() == EMAIL else reply_tokens.Verdict.WRONG_SENDER
        assert verdict is expected

    def test_a_resolved_request_state_does_not_verify(self) -> None:
        token = reply_tokens.parse_token(reply_tokens.make_token(REQUEST_ID, EMAIL))
        assert token is not None
        assert (
            reply_tokens.check(token, sender=EMAIL, authorised=EMAIL, state="responded") is reply_tokens.Verdict.FORGED
        )

    def test_the_local_part_fits_rfc_5321(self) -> None:
        for _ in range(50):
            address = reply_tokens.reply_address(uuid.uuid4(), "a-very-long-address.with.dots@example.com")
            assert len(address.split("@")[0]) <= 64


class TestSignedTokens:
    """Callback URLs and magic links share hitl.lib.signing."""

    @settings(max_examples=300, deadline=None)
    @given(
        purpose=st.sampled_from(["callback", "magic"]),
        index=st.integers(min_value=0, max_value=100),
        char=st.sampled_from("abcdefghijklmnopqrstuvwxyz234567.0189"),
    )
    def test_any_changed_character_is_refused(self, purpose: str, index: int, char: str) -> None:
        token = signing.sign(purpose, str(REQUEST_ID), EMAIL, ttl=3600)
        changed = mutate(token, index, char)
        if changed == token:
            signing.verify(changed, purpose, str(REQUEST_ID), EMAIL)
            return
        try:
            signing.verify(changed, purpose, str(REQUEST_ID), EMAIL)
        except (signing.TokenInvalid, signing.TokenExpired):
            return
        raise AssertionError(f"{changed!r} verified though it differs from {token!r}")

    @settings(max_examples=100, deadline=None)
    @given(other=st.uuids())
    def test_a_token_for_one_request_never_opens_another(self, other: uuid.UUID) -> None:
        token = signing.sign("magic", str(REQUEST_ID), EMAIL, ttl=3600)
        try:
            signing.verify(token, "magic", str(other), EMAIL)
        except signing.TokenInvalid:
            return
        assert other == REQUEST_ID

    def test_purposes_do_not_mix_and_expiry_holds(self) -> None:
        token = signing.sign("magic", str(REQUEST_ID), ttl=3600)
        try:
            signing.verify(token, "callback", str(REQUEST_ID))
            raise AssertionError("a magic-link token opened a callback")
        except signing.TokenInvalid:
            pass
        expired = signing.sign("callback", str(REQUEST_ID), ttl=-1)
        time.sleep(0.01)
        try:
            signing.verify(expired, "callback", str(REQUEST_ID))
            raise AssertionError("an expired token verified")
        except signing.TokenExpired:
            pass
