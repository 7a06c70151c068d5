"""Sign-in is throttled per account and per address, in the database (issue 14)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from hitl.views.signin import FAILURES_PER_ACCOUNT, FAILURES_PER_ADDRESS

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db: None):
    return get_user_model().objects.create_user("ops", "ops@example.com", "right", is_staff=True, is_superuser=True)


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
class TestSignInThrottle:
    def test_it_refuses_even_the_right_password_after_too_many_failures(self, staff, url: str) -> None:
        client = Client(REMOTE_ADDR="198.51.100.1")
        for _ in range(FAILURES_PER_ACCOUNT):
            assert client.post(url, {"username": "ops", "password": "wrong"}).status_code == 200
        # Another process, another address: the count is the database's, per account.
        response = Client(REMOTE_ADDR="198.51.100.2").post(url, {"username": "ops", "password": "right"})
        assert response.status_code == 200
        assert "Too many failed sign-in attempts" in response.content.decode()
        assert "_auth_user_id" not in response.client.session

    def test_it_throttles_an_address_trying_many_accounts(self, staff, url: str) -> None:
        client = Client(REMOTE_ADDR="203.0.113.9")
        for n in range(FAILURES_PER_ADDRESS):
            client.post(url, {"username": f"guess{n}", "password": "x"})
        response = client.post(url, {"username": "ops", "password": "right"})
        assert "Too many failed sign-in attempts" in response.content.decode()
        assert Client(REMOTE_ADDR="203.0.113.10").post(url, {"username": "ops", "password": "right"}).status_code == 302

    def test_it_lets_a_few_mistakes_through(self, staff, url: str) -> None:
        client = Client(REMOTE_ADDR="192.0.2.7")
        for _ in range(FAILURES_PER_ACCOUNT - 1):
            client.post(url, {"username": "ops", "password": "wrong"})
        assert client.post(url, {"username": "ops", "password": "right"}).status_code == 302
