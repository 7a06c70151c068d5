"""A small Python client for the HITL server (SPEC §8): the `hitl-client` distribution, only httpx.

pip install <checkout>/hitl/client            # or: pip install "<checkout>/hitl/client[crewai]"

from hitl_client import HitlClient

hitl = HitlClient("https://hitl.example.com", api_key="hitl_…")
req = hitl.create_request("Publish this post?", emit_options=["approved", "rejected"], content=draft)
result = hitl.wait_for_result(req["id"], timeout=3600)   # long-polls the server
if result["outcome"] == "approved": ...
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = ["HitlApiError", "HitlClient", "HitlTimeout", "__version__", "verify_signature"]

# The server's release number (hitl/__init__.py): client and server are released together.
__version__ = "0.2.0"


class HitlApiError(Exception):
    """The server answered with an error: `status`, the stable `code` and the `detail` text."""

    def __init__(self, status: int, code: str, detail: str, body: Any = None):
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail, self.body = status, code, detail, body


class HitlTimeout(TimeoutError):
    """Nobody answered within the time `wait_for_result` was given."""


RETRY_STATUSES = frozenset({502, 503, 504})


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("code", ""))
    except (ValueError, AttributeError):
        return ""


class HitlClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 75.0,
        transport: httpx.BaseTransport | None = None,
        retries: int = 3,
        backoff: float = 0.5,
    ):
        # POSTs that change something carry an Idempotency-Key (SPEC §15), so retrying one after a
        # dropped connection or a 502/503/504 can never make a second request or send a second email.
        self.retries, self.backoff = retries, backoff
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": f"hitl-client/{__version__}"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HitlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        return self._parse(response)

    def _post(self, path: str, body: Mapping[str, Any], idempotency_key: str | None) -> Any:
        """POST with one Idempotency-Key for the first try and every retry (a fresh one unless given)."""
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.post(path, json=dict(body), headers=headers)
            except httpx.TransportError:
                if last:
                    raise
            else:
                retry = response.status_code in RETRY_STATUSES or (
                    response.status_code == 409 and _code(response) == "idempotency_in_progress"
                )
                if not retry or last:
                    return self._parse(response)
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _parse(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"detail": response.text[:500], "code": "error"}
            raise HitlApiError(response.status_code, body.get("code", "error"), body.get("detail", ""), body)
        return response.json()

    # --- requests --------------------------------------------------------------------------------

    def create_request(self, message: str, *, idempotency_key: str | None = None, **fields: Any) -> dict[str, Any]:
        """Create a review request; `fields` are the SPEC §2 fields (emit_options, content, state, …).

        Retried on connection errors and 502/503/504 with one Idempotency-Key: one request, however
        many tries. Pass your own `idempotency_key` to make a retry of *this process* safe too."""
        return self._post("/api/v1/requests/", {"message": message, **fields}, idempotency_key)  # type: ignore[no-any-return]

    def get_request(self, request_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/requests/{request_id}/")  # type: ignore[no-any-return]

    def result(self, request_id: str, *, wait: int = 0) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/requests/{request_id}/result/", params={"wait": wait})  # type: ignore[no-any-return]

    def wait_for_result(self, request_id: str, *, timeout: float | None = None, poll: int = 55) -> dict[str, Any]:
        """Long-poll until the request leaves `pending` (answered, auto-answered, timed out, cancelled)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = poll if deadline is None else max(0, min(poll, int(deadline - time.monotonic())))
            result = self.result(request_id, wait=remaining)
            if result.get("status") != "pending":
                return result
            if deadline is not None and time.monotonic() >= deadline:
                raise HitlTimeout(f"request {request_id} still pending after {timeout} s")

    def respond(self, request_id: str, *, idempotency_key: str | None = None, **answer: Any) -> dict[str, Any]:
        """Answer as an API client: outcome=, feedback=, choice_id=, text=, edited_output=."""
        return self._post(f"/api/v1/requests/{request_id}/respond/", answer, idempotency_key)  # type: ignore[no-any-return]

    def cancel(self, request_id: str, reason: str = "", *, idempotency_key: str | None = None) -> dict[str, Any]:
        return self._post(f"/api/v1/requests/{request_id}/cancel/", {"reason": reason}, idempotency_key)  # type: ignore[no-any-return]

    def list_requests(self, **filters: Any) -> dict[str, Any]:
        return self._call("GET", "/api/v1/requests/", params=filters)  # type: ignore[no-any-return]

    # --- server-side flows -----------------------------------------------------------------------

    def kickoff(
        self,
        deployment_id: int,
        *,
        flow: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        **webhooks: str,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"inputs": dict(inputs or {}), **webhooks}
        if flow:
            body["flow"] = flow
        return self._post(f"/api/v1/deployments/{deployment_id}/kickoff/", body, idempotency_key)  # type: ignore[no-any-return]

    def execution(self, execution_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/executions/{execution_id}/")  # type: ignore[no-any-return]

    def resume(
        self,
        deployment_id: int,
        *,
        execution_id: str,
        task_id: str,
        human_feedback: str,
        is_approve: bool,
        idempotency_key: str | None = None,
        **webhooks: str,
    ) -> dict[str, Any]:
        body = {
            "execution_id": execution_id,
            "task_id": task_id,
            "human_feedback": human_feedback,
            "is_approve": is_approve,
            **webhooks,
        }
        return self._post(f"/api/v1/deployments/{deployment_id}/resume/", body, idempotency_key)  # type: ignore[no-any-return]


def verify_signature(secret: str, body: bytes | str, headers: Mapping[str, str], *, tolerance: int = 300) -> bool:
    """Check our webhook signature (SPEC §6): `X-Signature: sha256=<hex>` over `f"{X-Timestamp}.{body}"`,
    and refuse timestamps further than `tolerance` seconds from now (replays)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    signature, timestamp = lowered.get("x-signature", ""), lowered.get("x-timestamp", "")
    if not signature.startswith("sha256=") or not timestamp.isdigit():
        return False
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    payload = body.decode() if isinstance(body, bytes) else body
    expected = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.removeprefix("sha256="))
