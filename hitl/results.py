"""The one result shape (SPEC §2), for every mode and channel, answered or not."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hitl.models import HITLRequest

RESPONSE_TYPES = {"emit": "emit", "approval": "approval", "choices": "choice", "text": "text", "form": "form"}


def empty_choice() -> dict[str, Any]:
    return {"id": "", "label": "", "value": "", "description": "", "raw": {}}


def public_choice(option: dict[str, Any]) -> dict[str, Any]:
    return {key: option.get(key, "" if key != "raw" else {}) for key in ("id", "label", "value", "description", "raw")}


def approval_choice(outcome: str) -> dict[str, Any]:
    approved = outcome == "approved"
    return {
        "id": outcome,
        "label": outcome.capitalize(),
        "value": outcome,
        "description": "",
        "raw": {"approved": approved},
    }


def empty_result(request: HITLRequest) -> dict[str, Any]:
    """What `result` returns before anyone answered: the same keys, empty values."""
    result: dict[str, Any] = {
        "response_type": RESPONSE_TYPES[request.mode],
        "outcome": None,
        "feedback": "",
        "text": "",
        "choice": empty_choice(),
        "choices": [],
        "files": [],
        "metadata": dict(request.metadata or {}),
        "source": None,
        "responder": None,
        "responded_at": None,
        "method_name": request.method_name,
        "output": request.content,
        "edited_output": None,
        "content_sha256": None,  # SPEC §14: what the answer was given on
    }
    if request.mode == "form":
        result.update(form=None, edited_fields=[])
    return result


def build_result(
    request: HITLRequest,
    *,
    outcome: str | None,
    feedback: str,
    text: str = "",
    choices: list[dict[str, Any]] | None = None,
    source: str,
    responder: str,
    responded_at: str,
    edited_output: str | None = None,
    extra_metadata: dict[str, Any] | None = None,
    form: dict[str, Any] | None = None,
    edited_fields: list[str] | None = None,
    content_sha256: str | None = None,
) -> dict[str, Any]:
    result = empty_result(request)
    chosen = [public_choice(option) for option in (choices or [])]
    metadata: dict[str, Any] = dict(request.metadata or {})
    metadata.update(extra_metadata or {})
    if request.mode == "approval" and outcome:
        chosen = [approval_choice(outcome)]
        metadata.update({"approved": outcome == "approved", "rejected": outcome == "rejected"})
    result.update(
        {
            "outcome": outcome,
            "feedback": feedback,
            "text": text,
            "choice": chosen[0] if chosen else empty_choice(),
            "choices": chosen if request.multiple else [],
            "metadata": metadata,
            "source": source,
            "responder": responder,
            "responded_at": responded_at,
            "edited_output": edited_output,
            "content_sha256": content_sha256,
        }
    )
    if request.mode == "form":
        result.update(form=form, edited_fields=list(edited_fields or []))
    return result


def answer_summary(result: dict[str, Any]) -> str:
    """One line for what was answered: the outcome, the choice(s), the form's values or the start of the text."""
    if result.get("form"):
        shown = ", ".join(f"{k}: {shown_value(v)}" for k, v in result["form"].items())
        return shown[:120] + ("…" if len(shown) > 120 else "")
    if result.get("choices"):
        return ", ".join(str(c.get("label", "")) for c in result["choices"])
    choice = result.get("choice") or {}
    if result.get("response_type") == "choice" and choice.get("label"):
        return str(choice["label"])
    if result.get("outcome"):
        return str(result["outcome"])
    text = str(result.get("text") or "")
    return text[:80] + ("…" if len(text) > 80 else "")


def shown_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    return str(value)
