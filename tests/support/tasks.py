"""Tasks only tests enqueue (the worker imports them from the checkout, as it does hitl.tasks)."""

from __future__ import annotations

import time
from pathlib import Path


def slow_mark(path: str, seconds: float) -> str:
    """Writes "started", works `seconds`, then appends "done": a task a stop can catch in flight."""
    Path(path).write_text("started\n")
    time.sleep(seconds)
    with open(path, "a") as f:
        f.write("done\n")
    return "done"
