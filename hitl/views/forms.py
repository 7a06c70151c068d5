"""Forms of the reviewer pages and the admin helpers. They only shape input; the services decide."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet

from accounts.models import Deployment
from hitl.lib import forms as typed_forms
from hitl.models import HITLRequest, Mode, Status
from hitl.services import MAX_FEEDBACK, Answer

STATUS_FILTERS = [("pending", "Pending"), *((s.value, s.label) for s in Status if s != Status.PENDING), ("all", "All")]


class InboxFilterForm(forms.Form):
    """The inbox's GET filters. Invalid values fall back to their defaults (a filter is not an error)."""

    q = forms.CharField(required=False, max_length=200)
    status = forms.ChoiceField(required=False, choices=STATUS_FILTERS)
    deployment = forms.ModelChoiceField(queryset=Deployment.objects.none(), required=False, empty_label="All")
    flow = forms.CharField(required=False, max_length=200)
    method = forms.CharField(required=False, max_length=200)
    overdue = forms.BooleanField(required=False)
    mine = forms.BooleanField(required=False)

    def __init__(self, *args: Any, deployments: QuerySet[Deployment], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["deployment"].queryset = deployments  # type: ignore[attr-defined]

    def value(self, name: str) -> Any:
        if not self.is_bound:
            return None
        if self.is_valid() or name not in self.errors:
            return self.cleaned_data.get(name)
        return None


class AnswerForm(forms.Form):
    """One form for every mode: the pressed button carries `outcome` (emit/approval), the ticked
    options `choice`, the typed answer `text`; `feedback` and `edited_output` go with any of them."""

    outcome = forms.CharField(required=False, max_length=200)
    feedback = forms.CharField(
        required=False,
        max_length=MAX_FEEDBACK,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Optional comment for the flow and the audit log"}),
    )
    choice = forms.MultipleChoiceField(required=False)
    text = forms.CharField(required=False, max_length=MAX_FEEDBACK, widget=forms.Textarea(attrs={"rows": 5}))
    edited_output = forms.CharField(required=False, strip=False, max_length=500_000, widget=forms.Textarea)
    field_errors: dict[str, list[str]] | None = None  # a typed form's refusal, per field (SPEC §14)

    def __init__(self, request_obj: HITLRequest, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_obj = request_obj
        self.fields["choice"].choices = [(o["id"], o["label"]) for o in request_obj.options]  # type: ignore[attr-defined]
        self.fields["edited_output"].initial = request_obj.content
        if request_obj.mode == Mode.TEXT:
            self.fields["text"].required = True

    def answer(self) -> Answer:
        data = self.cleaned_data
        chosen: list[str] = data.get("choice") or []
        choice_id: str | list[str] | None = None
        if chosen:
            choice_id = chosen if self.request_obj.multiple else chosen[0]
        return Answer(
            outcome=data.get("outcome") or None,
            feedback=data.get("feedback") or "",
            choice_id=choice_id,
            text=data.get("text") or "",
            edited_output=self._edited(data.get("edited_output")),
            form=self._form_strings() if self.request_obj.mode == Mode.FORM else None,
            form_strings=True,
        )

    def _form_strings(self) -> dict[str, Any]:
        """A typed form's inputs as posted (`f-<name>`; checkbox groups as lists; an unchecked box is
        absent): the service types and validates them (SPEC §14)."""
        posted: dict[str, Any] = {}
        for spec in typed_forms.form_fields(self.request_obj.ordered_schema):
            key = f"f-{spec.name}"
            if key in self.data:
                data: Any = self.data  # the POST QueryDict
                posted[spec.name] = data.getlist(key) if spec.kind == "array" else data.get(key)
        return posted

    def _edited(self, value: str | None) -> str | None:
        """The edited content, or None when the reviewer left it as it was (nothing was edited)."""
        if not self.request_obj.editable or value is None:
            return None
        normalized = value.replace("\r\n", "\n")
        return None if normalized.strip() == (self.request_obj.content or "").strip() else normalized


class EmailNoteForm(forms.Form):
    """Reassign (manager) or delegate (assignee): the new address and an optional note."""

    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"placeholder": "name@example.com"}))
    note = forms.CharField(required=False, max_length=1000, widget=forms.TextInput(attrs={"placeholder": "Note"}))


class CancelForm(forms.Form):
    reason = forms.CharField(
        required=False, max_length=1000, widget=forms.TextInput(attrs={"placeholder": "Reason (optional)"})
    )


def form_rows(
    request_obj: HITLRequest, posted: Any = None, errors: dict[str, list[str]] | None = None
) -> list[dict[str, Any]]:
    """What the review page renders for a typed form (SPEC §14), one row per field: its description,
    the value to show (as posted after a refusal, else `initial` or `default`) and its errors."""
    schema = request_obj.ordered_schema
    shown = typed_forms.prefill(schema, request_obj.form_initial or {})
    rows = []
    for index, spec in enumerate(typed_forms.form_fields(schema), start=1):
        key = f"f-{spec.name}"
        if posted is not None:
            value: Any = posted.getlist(key) if spec.kind == "array" else posted.get(key, "")
            if spec.kind == "boolean":
                value = key in posted
        else:
            value = shown.get(spec.name, [] if spec.kind == "array" else "")
        if spec.kind == "array":
            value = [str(v) for v in (value or [])]
        elif spec.kind != "boolean":
            value = _as_input(spec, value)
        dom = f"ff-{index}"
        field_errors = (errors or {}).get(spec.name, [])
        described = " ".join(
            part for part, on in ((f"{dom}-help", spec.description), (f"{dom}-err", field_errors)) if on
        )
        rows.append(
            {"spec": spec, "key": key, "id": dom, "value": value, "errors": field_errors, "describedby": described}
        )
    return rows


def _as_input(spec: typed_forms.FormField, value: Any) -> str:
    """A value as an <input> shows it: datetime-local wants YYYY-MM-DDTHH:MM, numbers plain."""
    if value is None:
        return ""
    text = str(value)
    if spec.format == "date-time" and len(text) >= 16 and text[10] in "T ":
        return text[:10] + "T" + text[11:16]
    return text
