"""Forms of the reviewer pages and the admin helpers. They only shape input; the services decide."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet

from accounts.models import Deployment
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
        )

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
