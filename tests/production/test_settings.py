"""Serving settings read from the environment (SPEC §17): proxy, TLS, cookies, CSRF origins, SMTP, and
`check --deploy` clean on a production configuration."""

from __future__ import annotations

import subprocess
import sys

from tests.production.support import PRODUCTION, ROOT, environment, settings_of

TLS = (
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "CSRF_TRUSTED_ORIGINS",
)


class TestProxyAndTls:
    def test_it_turns_on_hsts_secure_cookies_and_redirects_for_an_https_base_url(self) -> None:
        seen = settings_of(PRODUCTION, *TLS)
        assert seen == {
            "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
            "SECURE_SSL_REDIRECT": True,
            "SECURE_HSTS_SECONDS": 31536000,
            "SESSION_COOKIE_SECURE": True,
            "CSRF_COOKIE_SECURE": True,
            "CSRF_TRUSTED_ORIGINS": ["https://hitl.example.com"],
        }

    def test_it_trusts_the_forwarded_scheme_only_behind_a_proxy(self) -> None:
        alone = {k: v for k, v in PRODUCTION.items() if k != "HITL_BEHIND_PROXY"}
        assert settings_of(alone, "SECURE_PROXY_SSL_HEADER") == {"SECURE_PROXY_SSL_HEADER": None}

    def test_it_keeps_plain_http_working_for_an_http_base_url(self) -> None:
        plain = {**PRODUCTION, "HITL_BASE_URL": "http://10.0.0.5:8000/hitl/"}
        seen = settings_of(plain, *TLS)
        assert (seen["SECURE_SSL_REDIRECT"], seen["SECURE_HSTS_SECONDS"], seen["SESSION_COOKIE_SECURE"]) == (
            False,
            0,
            False,
        )
        assert seen["CSRF_TRUSTED_ORIGINS"] == ["http://10.0.0.5:8000"]


class TestSmtp:
    def test_it_reads_every_email_setting_from_the_environment(self) -> None:
        smtp = {
            "EMAIL_HOST": "smtp.example.com",
            "EMAIL_PORT": "587",
            "EMAIL_HOST_USER": "hitl",
            "EMAIL_HOST_PASSWORD": "pw",
            "EMAIL_USE_TLS": "1",
            "EMAIL_USE_SSL": "0",
            "EMAIL_TIMEOUT": "12",
        }
        seen = settings_of({**PRODUCTION, **smtp}, "EMAIL_BACKEND", *smtp)
        assert seen == {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "smtp.example.com",
            "EMAIL_PORT": 587,
            "EMAIL_HOST_USER": "hitl",
            "EMAIL_HOST_PASSWORD": "pw",
            "EMAIL_USE_TLS": True,
            "EMAIL_USE_SSL": False,
            "EMAIL_TIMEOUT": 12,
        }

    def test_it_bounds_an_smtp_conversation_by_default(self) -> None:
        """Django waits forever by default: a hung SMTP server would hold a worker for good."""
        assert settings_of(PRODUCTION, "EMAIL_TIMEOUT", "EMAIL_HOST", "EMAIL_PORT") == {
            "EMAIL_TIMEOUT": 30,
            "EMAIL_HOST": "localhost",
            "EMAIL_PORT": 25,
        }


class TestSmtpCheck:
    def test_it_refuses_both_kinds_of_tls_at_once(self) -> None:
        done = subprocess.run(
            [sys.executable, "manage.py", "check"],
            env=environment({**PRODUCTION, "EMAIL_USE_TLS": "1", "EMAIL_USE_SSL": "1"}),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode != 0 and "hitl.E004" in done.stderr


class TestCheckDeploy:
    def run(self, values: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            env=environment(values),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def test_it_is_clean_on_a_production_configuration(self) -> None:
        done = self.run(PRODUCTION)
        assert done.returncode == 0, done.stderr
        assert "System check identified no issues" in done.stdout

    def test_it_still_warns_when_tls_is_not_there(self) -> None:
        done = self.run({**PRODUCTION, "HITL_BASE_URL": "http://hitl.example.com"})
        assert done.returncode != 0
        assert "security.W004" in done.stderr and "security.W008" in done.stderr
