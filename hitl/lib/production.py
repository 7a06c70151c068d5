"""What a production process (DEBUG off) needs before it may start, and the one message naming what is
missing. Read by the settings (SECRET_KEY, at import) and by hitl.checks (at WSGI load, in `hitl serve`
and `hitl worker`)."""

from __future__ import annotations

REQUIRED = ("SECRET_KEY", "HITL_BASE_URL", "HITL_ENCRYPTION_KEYS", "ANYMAIL_WEBHOOK_SECRET")


def refusal(missing: list[str]) -> str:
    return (
        f"Refusing to start in production (DEBUG off): {', '.join(missing)} "
        f"{'is' if len(missing) == 1 else 'are'} not set. A production server needs all of "
        f"{', '.join(REQUIRED)} in its environment (docs/deploy.md, the environment file); "
        "DEBUG=1 is for development only."
    )
