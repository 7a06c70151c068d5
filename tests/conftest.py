from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.base import World, build_world
from tests.qcluster import QCluster
from tests.receiver import Receiver, running

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    """Tests reach only this machine (database, Redis, local receivers): never the internet."""
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
        raise RuntimeError(f"network access blocked in tests: {address!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture
def world(db: None) -> World:
    return build_world()


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1, allow-listed for egress like an internal endpoint would be."""
    settings.HITL_EGRESS_ALLOWED_HOSTS = ["127.0.0.1"]
    with running(Receiver()) as server:
        yield server


@pytest.fixture
def qcluster(transactional_db: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[QCluster]:
    """A real worker (not started yet: call .start()). While it exists, tasks this process enqueues go to
    the real broker instead of running inline. Stopped before the database is flushed."""
    from django_q.brokers import get_broker
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    get_broker().purge_queue()  # nothing left over from an earlier test
    cluster = QCluster(tmp_path / "qcluster.log")
    try:
        yield cluster
    finally:
        cluster.stop()
