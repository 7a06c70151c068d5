"""CrewAI integration (no crewai dependency in the server; import this where CrewAI runs).

    from hitl_client import HitlClient
    from hitl_client.crewai import install, HitlResumer

    install(HitlClient("https://hitl.example.com", api_key="hitl_…"))   # every @human_feedback → us
    paused = MyFlow().kickoff()                                          # returns HumanFeedbackPending
    HitlResumer(client, [MyFlow]).wait_and_resume(paused.context.flow_id)

`install()` makes this server CrewAI's process-wide human-feedback provider: each `@human_feedback`
creates a review request here (emailed, answerable by reply, page, API, Telegram) and raises
`HumanFeedbackPending`, so the flow pauses without a blocked thread. The resumer loads the paused flow
and resumes it with the answer. When the answer is one of the `emit` options the outcome is matched
exactly (the same rules as our email replies), so `approved` routes to `@listen("approved")` with no
LLM configured; only free-form feedback falls back to CrewAI's LLM collapsing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from . import HitlClient, verify_signature
from .matching import split_leading_option

__all__ = ["RESOLVED_EVENTS", "HitlFeedbackProvider", "HitlResumer", "answer_text", "install"]

RESOLVED_EVENTS = {"request_responded", "request_auto_responded", "request_timed_out"}


def _json_safe(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def _content(output: Any) -> str:
    if isinstance(output, str):
        return output
    return f"```json\n{json.dumps(_json_safe(output), indent=2, default=str)}\n```"


class HitlFeedbackProvider:
    """A CrewAI `HumanFeedbackProvider` that asks this server and pauses the flow."""

    def __init__(self, client: HitlClient, **request_defaults: Any):
        self.client = client
        self.request_defaults = request_defaults  # e.g. assign_to=, channel=, timeout=, link_ttl=

    def request_feedback(self, context: Any, flow: Any) -> str:
        from crewai.flow.async_feedback import HumanFeedbackPending

        state = _json_safe(flow.state)
        fields: dict[str, Any] = {
            "content": _content(context.method_output),
            "flow_id": context.flow_id,
            "flow_name": type(flow).__name__,
            "method_name": context.method_name,
            "state": state if isinstance(state, dict) else {"state": state},
            "metadata": {**_json_safe(context.metadata or {}), "crewai_flow_class": context.flow_class},
            **self.request_defaults,
        }
        if context.emit:
            fields["emit_options"] = list(context.emit)
            if context.default_outcome:
                fields["default_outcome"] = context.default_outcome
        else:
            fields["mode"] = "text"
        request = self.client.create_request(context.message, **fields)
        # Persisted with the pending context, so a resumer in another process finds the request.
        context.metadata = {**(context.metadata or {}), "hitl_request_id": request["id"]}
        raise HumanFeedbackPending(
            context=context,
            callback_info={"hitl_request_id": request["id"], "callback_url": request["callback_url"]},
        )


def _exact_outcome_matching() -> None:
    """Resolve emit outcomes without an LLM when the answer names one (first line, our rules)."""
    from crewai.flow.human_feedback import HumanFeedbackResult
    from crewai.flow.runtime import Flow

    original = Flow._finalize_human_feedback
    if getattr(original, "__hitl_exact__", False):
        return

    async def finalize(
        self: Any,
        *,
        method_name: str,
        method_output: Any,
        raw_feedback: str,
        emit: Any,
        default_outcome: Any,
        llm: Any,
        metadata: dict[str, Any],
    ) -> Any:
        if emit and raw_feedback.strip():
            outcome, feedback = split_leading_option(raw_feedback, list(emit))
            if outcome is not None:
                result = HumanFeedbackResult(
                    output=method_output,
                    feedback=feedback,
                    outcome=outcome,
                    method_name=method_name,
                    metadata=metadata,
                )
                self.human_feedback_history.append(result)
                self.last_human_feedback = result
                return result
        return await original(
            self,
            method_name=method_name,
            method_output=method_output,
            raw_feedback=raw_feedback,
            emit=emit,
            default_outcome=default_outcome,
            llm=llm,
            metadata=metadata,
        )

    finalize.__hitl_exact__ = True  # type: ignore[attr-defined]
    Flow._finalize_human_feedback = finalize


def install(client: HitlClient, **request_defaults: Any) -> HitlFeedbackProvider:
    """Make this server CrewAI's human-feedback provider for the whole process."""
    from crewai.flow.flow_config import flow_config

    provider = HitlFeedbackProvider(client, **request_defaults)
    flow_config.hitl_provider = provider
    _exact_outcome_matching()
    return provider


def answer_text(result: Mapping[str, Any]) -> str:
    """The feedback string CrewAI's resume() gets: the outcome on the first line, then the feedback."""
    outcome, feedback = result.get("outcome"), (result.get("feedback") or result.get("text") or "").strip()
    if result.get("response_type") == "choice" and result.get("choice", {}).get("label"):
        return "\n\n".join(part for part in (str(result["choice"]["label"]), feedback) if part)
    return "\n\n".join(part for part in (outcome or "", feedback) if part)


class HitlResumer:
    """Loads paused CrewAI flows and resumes them with our answers (polling or webhooks)."""

    def __init__(self, client: HitlClient, flows: Iterable[type], persistence: Any = None):
        self.client = client
        self.flows = {f"{cls.__module__}.{cls.__name__}": cls for cls in flows}
        self.by_name = {cls.__name__: cls for cls in flows}
        self.persistence = persistence

    def _persistence(self) -> Any:
        if self.persistence is None:
            from crewai.flow.persistence.factory import default_flow_persistence

            self.persistence = default_flow_persistence()
        return self.persistence

    def pending(self, flow_id: str) -> tuple[type, str] | None:
        """(flow class, our request id) of a paused flow, from CrewAI's persistence."""
        loaded = self._persistence().load_pending_feedback(flow_id)
        if loaded is None:
            return None
        _, context = loaded
        cls = self.flows.get(context.flow_class) or self.by_name.get(context.flow_class.rsplit(".", 1)[-1])
        request_id = (context.metadata or {}).get("hitl_request_id")
        if cls is None or not request_id:
            return None
        return cls, request_id

    def resume(self, flow_id: str, result: Mapping[str, Any]) -> Any:
        found = self.pending(flow_id)
        if found is None:
            raise LookupError(f"no paused flow {flow_id} known to this resumer")
        cls, _ = found
        flow = cls.from_pending(flow_id, self._persistence())  # type: ignore[attr-defined]
        return flow.resume(answer_text(result))

    def wait_and_resume(self, flow_id: str, *, timeout: float | None = None) -> Any:
        """Long-poll our server for the answer to the flow's pending request, then resume it."""
        found = self.pending(flow_id)
        if found is None:
            raise LookupError(f"no paused flow {flow_id} known to this resumer")
        result = self.client.wait_for_result(found[1], timeout=timeout)
        return self.resume(flow_id, result)

    def handle_webhook(self, body: bytes | str, headers: Mapping[str, str], secret: str) -> Any:
        """For a receiver of our webhooks: verify, and resume the flow a resolved request belongs to."""
        if not verify_signature(secret, body, headers):
            raise PermissionError("bad webhook signature")
        payload = json.loads(body)
        if payload.get("event") not in RESOLVED_EVENTS:
            return None
        flow_id = (payload.get("request") or {}).get("flow_id")
        if not flow_id or self.pending(flow_id) is None:
            return None
        return self.resume(flow_id, payload.get("result") or {})
