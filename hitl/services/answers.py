"""Reading an answer: what a channel passed in (`Answer`), checked against the request's mode and turned
into the result's answer fields. Nothing here writes; `resolve.respond_to_request` records it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hitl.lib import forms
from hitl.lib.answers import (
    approval_outcome,
    is_hedged,
    match_option,
    normalize,
    parse_approval,
    parse_emit,
    split_leading_option,
)
from hitl.lib.errors import InvalidAnswer
from hitl.models import HITLRequest, Mode

MAX_FEEDBACK = 50_000


@dataclass
class Answer:
    """An answer as a channel read it. Every field optional; `interpret_answer` decides."""

    outcome: str | None = None
    feedback: str = ""
    choice_id: str | list[str] | None = None
    text: str = ""
    edited_output: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Form mode (SPEC §14): the API's `data` (typed JSON), a page's strings (`form_strings`), or an
    # email reply's `field: value` lines (`form_reply`). Anything else (a chat button) answers no form.
    form: Any = None
    form_strings: bool = False
    form_reply: bool = False  # an email reply: the form's values are `field: value` lines of the feedback


# "3. this one is best", "#2) the Django one", "1, 3 - both fine": numbers, then punctuation, then a
# comment. Punctuation is required so "3 cats" (a typo of the label "3 cat") is never read as option 3;
# a question mark never counts ("3? not sure" is a question, not a choice).
_LEADING_NUMBERS = re.compile(
    r"^\s*(#?\d+(?:\s*(?:,|&|\band\b)\s*#?\d+)*)\s*([.):;,!\-\u2013\u2014]+\s*(.*))$", re.IGNORECASE
)


def unclear(request: HITLRequest, line: str) -> InvalidAnswer:
    """The refusal for a first line that names an option but questions or takes it back."""
    return InvalidAnswer(
        f"'{line.strip()[:80]}' starts with an answer but questions or takes it back; "
        "reply with just the answer on the first line (a comment may follow on the next lines).",
        code="unclear_answer",
        extra={"options": _option_list(request)},
    )


def _read_choice_line(request: HITLRequest, line: str) -> tuple[Any, str]:
    """What a typed first line picks, and the comment that follows it on the same line.

    Tried in order: the whole line as an option ("2", "#2", a label even with its own punctuation),
    a label or value followed by punctuation and a comment (longest label first), numbers followed by
    punctuation and a comment. Nothing found: the whole line, so the refusal names what was typed.
    """
    line = line.strip()
    if request.multiple:
        parts = [p.strip() for p in line.split(",") if p.strip()]
        if parts and all(_find_option(request.options, p) is not None for p in parts):
            return parts, ""
    elif _find_option(request.options, line) is not None:
        return line, ""
    if not request.multiple:
        names: dict[str, dict[str, Any]] = {}
        for option in request.options:
            for key in ("label", "value"):
                if isinstance(option.get(key), str | int) and str(option[key]).strip():
                    names.setdefault(str(option[key]), option)
        parsed = split_leading_option(line, list(names))
        if parsed.outcome is not None:
            if parsed.ambiguous:
                raise unclear(request, line)
            return names[parsed.outcome]["id"], parsed.feedback
    question = re.match(r"^\s*#?(\d+)\s*\?", line)
    if question and _find_option(request.options, question.group(1)) is not None:
        raise unclear(request, line)  # "2? not sure"
    numbers = _LEADING_NUMBERS.match(line)
    if numbers:
        picked = [n.strip() for n in re.split(r"\s*(?:,|&|\band\b)\s*", numbers.group(1), flags=re.I)]
        if (request.multiple or len(picked) == 1) and all(_find_option(request.options, n) is not None for n in picked):
            if is_hedged(numbers.group(2)):
                raise unclear(request, line)
            return (picked if request.multiple else picked[0]), numbers.group(3).strip()
    return line, ""


def _pick_choices(request: HITLRequest, answer: Answer) -> tuple[list[dict[str, Any]], str | None]:
    """The chosen options, and the comment typed after them on the first line (None: chosen by id)."""
    wanted = answer.choice_id
    comment: str | None = None
    if wanted is None or wanted == "" or wanted == []:
        first_line = (answer.feedback or answer.text or "").strip().splitlines()
        wanted, comment = _read_choice_line(request, first_line[0]) if first_line else (None, "")
    if wanted is None:
        raise InvalidAnswer(
            "Pick one of the options.", code="choice_required", extra={"options": _option_list(request)}
        )
    if isinstance(wanted, str):
        wanted = [part for part in (p.strip() for p in wanted.split(",")) if part] if request.multiple else [wanted]
    if not isinstance(wanted, list) or not all(isinstance(w, str | int) for w in wanted):
        raise InvalidAnswer("choice_id must be an option id or a list of them.", code="invalid_choice")
    if len(wanted) > 1 and not request.multiple:
        raise InvalidAnswer("This request takes exactly one choice.", code="invalid_choice")
    chosen: list[dict[str, Any]] = []
    for item in wanted:
        option = _find_option(request.options, str(item))
        if option is None:
            raise InvalidAnswer(
                f"'{item}' is not one of the options.", code="invalid_choice", extra={"options": _option_list(request)}
            )
        if option not in chosen:
            chosen.append(option)
    return chosen, comment


def _find_option(options: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """By id (option_2), number (2 or #2), label or value, case- and punctuation-insensitively."""
    key = key.strip()
    number = key.lstrip("#").rstrip(".):")
    if number.isdigit() and 1 <= int(number) <= len(options):
        return options[int(number) - 1]
    wanted = normalize(key)
    for option in options:
        if (
            option["id"] == key
            or normalize(str(option["label"])) == wanted
            or normalize(str(option["value"])) == wanted
        ):
            return option
    return None


def _option_list(request: HITLRequest) -> list[str]:
    if request.mode == Mode.CHOICES:
        return [f"{i}. {o['label']}" for i, o in enumerate(request.options, start=1)]
    return request.option_names()


def interpret_answer(request: HITLRequest, answer: Answer) -> dict[str, Any]:
    """Validate an answer against the request's mode; return the result's answer fields.

    Raises InvalidAnswer (nothing is recorded against the request) when it does not fit.
    """
    feedback = (answer.feedback or "").strip()
    if len(feedback) > MAX_FEEDBACK or len(answer.text or "") > MAX_FEEDBACK:
        raise InvalidAnswer(f"Feedback is limited to {MAX_FEEDBACK} characters.", code="too_long")
    if answer.edited_output is not None:
        if not request.editable:
            raise InvalidAnswer("This request does not allow editing its content.", code="not_editable")
        if not isinstance(answer.edited_output, str) or len(answer.edited_output) > 500_000:
            raise InvalidAnswer("edited_output must be text of at most 500,000 characters.", code="invalid")
    fields: dict[str, Any] = {"outcome": None, "feedback": feedback, "text": "", "choices": []}

    if request.mode == Mode.EMIT:
        if answer.outcome:
            outcome = match_option(answer.outcome, request.emit_options)
            if outcome is None:
                raise InvalidAnswer(
                    f"'{answer.outcome}' is not an option; choose one of: {', '.join(request.emit_options)}.",
                    code="invalid_outcome",
                    extra={"options": request.emit_options},
                )
            fields["outcome"] = outcome
        else:
            parsed = parse_emit(feedback, request.emit_options)
            rejecting = parsed.outcome is not None and approval_outcome(parsed.outcome) == "rejected"
            if parsed.hedge == "question" or (parsed.hedge == "negation" and not rejecting):
                raise unclear(request, feedback.splitlines()[0])
            fields.update(outcome=parsed.outcome, feedback=parsed.feedback)
            if parsed.outcome is None and not feedback:
                raise InvalidAnswer(
                    f"Empty answer; choose one of: {', '.join(request.emit_options)}, or write feedback.",
                    code="empty_answer",
                    extra={"options": request.emit_options},
                )
    elif request.mode == Mode.APPROVAL:
        if answer.outcome:
            outcome = approval_outcome(answer.outcome)
        else:
            parsed = parse_approval(feedback)
            if parsed.ambiguous:
                raise unclear(request, feedback.splitlines()[0])
            outcome = parsed.outcome
            if outcome:
                fields["feedback"] = parsed.feedback
        if outcome is None:
            raise InvalidAnswer(
                "Approve or reject: answer 'approved' or 'rejected'.",
                code="invalid_outcome",
                extra={"options": ["approved", "rejected"]},
            )
        fields["outcome"] = outcome
    elif request.mode == Mode.CHOICES:
        fields["choices"], comment = _pick_choices(request, answer)
        if comment is not None:
            # The choice was read from the first line of the feedback; what follows it is the comment.
            rest = "\n".join(feedback.splitlines()[1:]).strip()
            fields["feedback"] = "\n\n".join(part for part in (comment, rest) if part)
    elif request.mode == Mode.TEXT:
        typed = (answer.text or "").strip() or feedback
        if not typed:
            raise InvalidAnswer("This request needs a typed answer.", code="text_required")
        fields.update(text=typed, feedback=feedback or typed)
    elif request.mode == Mode.FORM:
        values, feedback = read_form(request, answer)
        fields.update(
            feedback=feedback,
            form=values,
            edited_fields=forms.edited_fields(values, request.form_initial or {}),
        )
    return fields


def read_form(request: HITLRequest, answer: Answer) -> tuple[dict[str, Any], str]:
    """A form answer's validated, typed values and its feedback; InvalidAnswer (code invalid_form,
    `errors` per field) naming every field's problem at once."""
    schema = request.ordered_schema
    feedback = (answer.feedback or "").strip()
    if answer.form_reply:
        values, errors, rest = forms.read_reply(schema, answer.feedback or answer.text, request.form_initial)
        feedback = rest
    elif answer.form is None:
        raise InvalidAnswer(
            "This request is a form: answer it on its page (the link), by email with field: value lines, "
            "or through the API with data.",
            code="form_required",
        )
    elif answer.form_strings:
        values, errors = forms.read_strings(schema, answer.form)
    else:
        values, errors = forms.read_typed(schema, answer.form)
    for name, messages in forms.check_values(schema, values).items():
        errors.setdefault(name, messages)
    if errors:
        labels = {f.name: f.label for f in forms.form_fields(schema)}
        lines = [
            f"{labels.get(name, name)}{f' ({name})' if labels.get(name, name) != name else ''}: {' '.join(messages)}"
            for name, messages in errors.items()
        ]
        raise InvalidAnswer(
            f"{len(errors)} field(s) need fixing: " + "; ".join(lines),
            code="invalid_form",
            extra={"errors": errors},
        )
    return forms.complete(schema, values), feedback
