"""django-q2 task functions for flows: thin, idempotent."""

from flows import webhooks
from flows.engine import runs


def run_step(run_id: str, seq: int) -> None:
    runs.run_step(run_id, seq)


def recover_stalled_runs() -> int:
    return runs.recover_stalled_runs()


def deliver_run_webhook(run_id: str, key: str, body: str, message_id: str, attempt: int, url: str = "") -> None:
    webhooks.deliver(run_id, key, body, message_id, attempt, url)
