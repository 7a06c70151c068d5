"""Fault injection on the webhook path: a receiver that stalls past the timeout, or closes the
connection without answering. Either way the attempt is recorded, retried, and finally delivered to a
healthy receiver with the same webhook-id: nothing is lost."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from hitl.models import DeliveryStatus, Webhook, WebhookDelivery
from hitl.services.sweep import sweep
from tests.hitl.channels.test_webhooks import add_hook, make_due
from tests.support.base import World
from tests.support.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def misbehaving(mode: str) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that reads the request, then stalls ("stall") or hangs up ("close")."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.recv(65536)
            if mode == "stall":
                stop.wait(5)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hooks/hitl"
    finally:
        stop.set()
        thread.join(timeout=6)
        server.close()


class TestReceiverFaults:
    @pytest.mark.parametrize("mode", ["stall", "close"])
    def test_a_failing_receiver_is_recorded_retried_and_finally_delivered(
        self, world: World, receiver: Receiver, settings: Any, mode: str
    ) -> None:
        settings.HITL_WEBHOOK_TIMEOUT = 1
        webhook = add_hook(world, receiver)
        with misbehaving(mode) as bad_url:
            Webhook.objects.filter(pk=webhook.pk).update(url=bad_url)
            started = time.monotonic()
            world.create()
            elapsed = time.monotonic() - started
        delivery = WebhookDelivery.objects.get()
        first = delivery.attempts.order_by("number").first()
        assert first is not None and first.status_code is None and first.error
        assert delivery.status == DeliveryStatus.PENDING  # kept for a retry, not dropped
        if mode == "stall":
            assert elapsed < 10  # the forced timeout bounded the attempt

        Webhook.objects.filter(pk=webhook.pk).update(url=receiver.url)
        make_due()
        sweep()
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.DELIVERED
        (received,) = receiver.wait_for(1)
        assert received.webhook_id and received.seed_ok and received.standard_ok
        assert delivery.attempts.count() == 2
