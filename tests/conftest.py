from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.base import World, build_world
from tests.support.qcluster import QCluster
from tests.support.receiver import Receiver, running

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


@pytest.fixture(autouse=True)
def _fresh_config_cache() -> None:
    """Each test's database starts again from ids 1, 2 … with version 0: a deployment of an earlier
    test must not lend its cached rules to this one's (production ids are never reused)."""
    from hitl import config_cache

    config_cache.clear()


@pytest.fixture
def world(db: None) -> World:
    return build_world()


@pytest.fixture(autouse=True)
def _on_commit_like_production(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run `transaction.on_commit` callbacks when the code under test commits, as in production.

    pytest-django wraps each `db` test in an atomic block that never commits, so callbacks (email,
    webhooks, tasks) would never fire. Here the test's own wrapper blocks count as "no transaction":
    a callback fires when the last block opened by the code under test exits successfully.
    """
    from django.db import transaction
    from django.db.backends.base.base import BaseDatabaseWrapper

    def only_test_blocks(conn: BaseDatabaseWrapper) -> bool:
        return all(getattr(block, "_from_testcase", False) for block in conn.atomic_blocks)

    original_on_commit = BaseDatabaseWrapper.on_commit
    original_exit = transaction.Atomic.__exit__

    def on_commit(self: BaseDatabaseWrapper, func: Any, robust: bool = False) -> None:
        if self.in_atomic_block and only_test_blocks(self):
            func()
        else:
            original_on_commit(self, func, robust)

    def atomic_exit(self: transaction.Atomic, exc_type: Any, exc_value: Any, traceback: Any) -> Any:
        result = original_exit(self, exc_type, exc_value, traceback)
        conn = transaction.get_connection(self.using)
        if exc_type is None and conn.in_atomic_block and only_test_blocks(conn) and not conn.needs_rollback:
            pending, conn.run_on_commit = conn.run_on_commit, []
            for _, func, _robust in pending:
                func()
        return result

    monkeypatch.setattr(BaseDatabaseWrapper, "on_commit", on_commit)
    monkeypatch.setattr(transaction.Atomic, "__exit__", atomic_exit)


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
