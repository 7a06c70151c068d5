"""gunicorn's configuration for `hitl serve` (loaded as `python:hitl.gunicorn_conf`; the command line's
--bind/--workers/--threads override these). Threads (gthread), so a long-poll (`?wait=`, up to 60 s)
holds a thread, not a whole process: with the defaults one machine serves 2 × 8 requests at once."""

import os

bind = os.environ.get("HITL_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("HITL_WEB_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("HITL_WEB_THREADS", "8"))
# gthread's timeout is a stuck-worker watchdog (the main loop's heartbeat), not a request limit, so
# long-polls do not trip it; it is kept above HITL_MAX_WAIT_SECONDS anyway.
timeout = 90
# systemd's stop (SIGTERM): finish what is in flight for up to 30 s; the unit waits 45 s.
graceful_timeout = 30
keepalive = 5
# The proxy on the same machine (docs/deploy.md) is the one allowed to set X-Forwarded-*.
forwarded_allow_ips = os.environ.get("HITL_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
# Import the app in the master once: a configuration error stops `hitl serve` at once with the message
# instead of a loop of workers failing to boot.
preload_app = True
