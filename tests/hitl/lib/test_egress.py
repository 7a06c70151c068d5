"""The one outbound HTTP seam (hitl.lib.http): SSRF refusals, allow-list, HTTPS rule, redirects, timeouts.

Refusals happen before any connection: were one attempted, tests/conftest.py's network guard would
raise RuntimeError instead of the EgressRefused these tests expect.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hitl.lib import http
from tests.support.receiver import Receiver, running


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names → addresses, through the module's resolver seam (no real DNS in tests)."""
    table: dict[str, list[str]] = {}
    real = http.resolve

    def resolve(host: str, port: int) -> list[str]:
        return table[host] if host in table else real(host, port)

    monkeypatch.setattr(http, "resolve", resolve)
    return table


class TestAddressRules:
    @pytest.mark.parametrize(
        "address",
        [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "2002:7f00:1::",  # 6to4 wrapping 127.0.0.1
            "64:ff9b::a00:1",  # NAT64 wrapping 10.0.0.1
        ],
    )
    def test_non_public_addresses_are_not_public(self, address: str) -> None:
        assert not http.is_public(ipaddress.ip_address(address))

    @pytest.mark.parametrize(
        "address", ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
    )
    def test_public_addresses_are(self, address: str) -> None:
        assert http.is_public(ipaddress.ip_address(address))


class TestRefusals:
    @pytest.mark.parametrize(
        "url",
        [
            "https://127.0.0.1/hook",
            "https://10.0.0.1/hook",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::1]/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://[fe80::1]/hook",
        ],
    )
    def test_it_refuses_private_address_literals(self, url: str) -> None:
        with pytest.raises(http.EgressRefused, match="not a public address"):
            http.post_json(url, {"x": 1})

    def test_it_refuses_a_name_resolving_to_a_private_address(self, fake_dns: dict[str, list[str]]) -> None:
        fake_dns["hooks.internal.example"] = ["10.1.2.3"]
        with pytest.raises(http.EgressRefused, match=r"hooks.internal.example resolves to 10.1.2.3"):
            http.post_json("https://hooks.internal.example/x", {})

    def test_it_refuses_a_name_with_any_private_address(self, fake_dns: dict[str, list[str]]) -> None:
        fake_dns["mixed.example"] = ["93.184.215.14", "192.168.0.10"]
        with pytest.raises(http.EgressRefused):
            http.post_json("https://mixed.example/x", {})

    def test_it_refuses_localhost(self, settings: Any) -> None:
        settings.DEBUG = True
        with pytest.raises(http.EgressRefused, match="localhost resolves to"):
            http.post_json("http://localhost:8000/x", {})

    def test_it_requires_https_outside_debug(self) -> None:
        with pytest.raises(http.EgressRefused, match="HTTPS is required"):
            http.post_json("http://hooks.example.com/x", {})

    @pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "https://user:pw@example.com/", "/x"])
    def test_it_refuses_other_schemes_and_credentials(self, url: str) -> None:
        with pytest.raises(http.EgressRefused):
            http.check_url(url)

    def test_a_redirect_to_a_private_address_is_refused(self, settings: Any) -> None:
        settings.HITL_EGRESS_ALLOWED_HOSTS = ["127.0.0.1"]
        with running(Receiver(redirect_to="https://169.254.169.254/latest/meta-data/")) as receiver:
            with pytest.raises(http.EgressRefused, match="169.254.169.254"):
                http.post_json(receiver.url, {"x": 1})
            assert len(receiver.received) == 1

    def test_a_redirect_to_a_name_resolving_to_a_private_address_is_refused(
        self, settings: Any, fake_dns: dict[str, list[str]]
    ) -> None:
        settings.HITL_EGRESS_ALLOWED_HOSTS = ["127.0.0.1"]
        fake_dns["evil.example"] = ["127.0.0.1"]
        refused = pytest.raises(http.EgressRefused, match="evil.example resolves to 127.0.0.1")
        with running(Receiver(redirect_to="https://evil.example/")) as receiver, refused:
            http.post_json(receiver.url, {"x": 1})

    def test_it_stops_after_a_few_redirects(self, settings: Any) -> None:
        settings.HITL_EGRESS_ALLOWED_HOSTS = ["127.0.0.1"]
        with running(Receiver()) as receiver:
            receiver.redirect_to = receiver.url
            with pytest.raises(http.EgressError, match="redirects") as info:
                http.post_json(receiver.url, {})
            assert not info.value.retryable
            assert len(receiver.received) == http.MAX_REDIRECTS + 1


class TestAllowList:
    def test_an_allow_listed_address_is_reached_over_plain_http(self, settings: Any) -> None:
        settings.HITL_EGRESS_ALLOWED_HOSTS = ["127.0.0.1"]
        with running(Receiver(statuses=[201])) as receiver:
            response = http.post_json(receiver.url, {"hello": "world"}, headers={"X-Test": "1"})
        assert response.status == 201 and response.ok
        assert response.excerpt() == "answered 201"
        (got,) = receiver.received
        assert got.body == '{"hello":"world"}' and got.headers["x-test"] == "1"
        assert got.headers["content-type"] == "application/json"

    def test_an_allow_listed_name_connects_to_the_address_that_was_checked(
        self, settings: Any, fake_dns: dict[str, list[str]]
    ) -> None:
        """The name resolves once, through the seam; the request goes to that address with the name in
        the Host header (no second lookup that a rebinding DNS server could answer differently)."""
        settings.HITL_EGRESS_ALLOWED_HOSTS = ["hooks.internal.example"]
        fake_dns["hooks.internal.example"] = ["127.0.0.1"]
        with running(Receiver()) as receiver:
            response = http.post_json(f"http://hooks.internal.example:{receiver.port}/in", {})
        assert response.ok
        assert receiver.received[0].headers["host"] == f"hooks.internal.example:{receiver.port}"

    def test_an_allow_listed_network_covers_its_addresses(self, settings: Any) -> None:
        settings.HITL_EGRESS_ALLOWED_HOSTS = ["127.0.0.0/8"]
        assert http.check_url("http://127.0.0.1:1/x").allowed
        assert not http.is_allowed_host("10.0.0.1")
        settings.HITL_EGRESS_ALLOWED_HOSTS = ["10.0.0.0/8"]
        assert http.check_url("http://10.0.0.1/x").addresses == ["10.0.0.1"]

    def test_allow_listing_one_host_does_not_allow_its_redirects(
        self, settings: Any, fake_dns: dict[str, list[str]]
    ) -> None:
        settings.HITL_EGRESS_ALLOWED_HOSTS = ["127.0.0.1"]
        with running(Receiver()) as target, running(Receiver()) as hop:
            hop.redirect_to = f"http://localhost:{target.port}/"
            with pytest.raises(http.EgressRefused):
                http.post_json(hop.url, {})
            assert target.received == []

    def test_a_307_redirect_repeats_the_post_and_a_302_becomes_a_get(self, settings: Any) -> None:
        settings.HITL_EGRESS_ALLOWED_HOSTS = ["127.0.0.1"]
        with running(Receiver()) as target, running(Receiver(statuses=[307])) as hop:
            hop.statuses = []
            hop.redirect_to = target.url
            response = http.post_json(hop.url, {"a": 1})
            assert response.ok and response.url == target.url
            assert target.received[0].method == "GET" and target.received[0].body == ""


@contextmanager
def slow_server(delay: float) -> Iterator[int]:
    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            time.sleep(delay)
            try:
                self.send_response(200)
                self.end_headers()
            except OSError:
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class TestTimeouts:
    def test_it_gives_up_at_the_time_budget(self, settings: Any) -> None:
        settings.HITL_EGRESS_ALLOWED_HOSTS = ["127.0.0.1"]
        with slow_server(2.0) as port:
            started = time.monotonic()
            with pytest.raises(http.EgressError, match="timed out") as info:
                http.post_json(f"http://127.0.0.1:{port}/", {}, timeout=0.5)
            assert time.monotonic() - started < 1.5
            assert info.value.retryable

    def test_connection_refused_is_retryable(self, settings: Any) -> None:
        settings.HITL_EGRESS_ALLOWED_HOSTS = ["127.0.0.1"]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(http.EgressError, match="cannot connect") as info:
            http.post_json(f"http://127.0.0.1:{port}/", {})
        assert info.value.retryable
