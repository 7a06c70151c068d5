"""The shipped server config lets a long-poll wait its documented 60 s (issue 14): gunicorn's gthread
workers (a wait holds a thread, not a process), its watchdog and the proxy example's read timeout all
above HITL_MAX_WAIT_SECONDS. The live waits behind `hitl serve` are in test_cli.py."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

from hitl import gunicorn_conf

ROOT = Path(__file__).resolve().parents[2]


class TestLongPollBehindTheShippedConfig:
    def test_it_gives_a_wait_a_thread_and_more_time_than_the_longest_wait(self) -> None:
        assert gunicorn_conf.worker_class == "gthread" and gunicorn_conf.threads >= 4
        assert gunicorn_conf.timeout > settings.HITL_MAX_WAIT_SECONDS
        assert gunicorn_conf.graceful_timeout < gunicorn_conf.timeout

    def test_the_proxy_example_reads_longer_than_the_longest_wait(self) -> None:
        deploy = (ROOT / "docs" / "deploy.md").read_text()
        timeouts = [int(t) for t in re.findall(r"proxy_read_timeout\s+(\d+)s", deploy)]
        assert timeouts and min(timeouts) > settings.HITL_MAX_WAIT_SECONDS
