"""Fixtures of the inbound email tests."""

from __future__ import annotations

import pytest

from tests.support.base import World
from tests.support.inbound import pending_request


@pytest.fixture
def pending(world: World) -> tuple[str, str]:
    """A pending request for REVIEWER: (its id, the Reply-To of its notification)."""
    return pending_request(world)
