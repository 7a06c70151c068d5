"""The flow DSL (SPEC §8): `Flow`, `@start`, `@listen`, `or_`, `and_`, `@router`, `@human_feedback`,
`@task(human_input=True)` and `HumanFeedbackResult`. CrewAI-compatible in shape, so a CrewAI flow runs
here with only its imports changed:

    from flows.runtime import Flow, start, listen, or_, human_feedback, HumanFeedbackResult

Decorators only annotate methods; `flows.engine` runs them durably (one django-q2 task per step, state
saved after every step, a human step pauses the run without holding a worker).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

StateT = TypeVar("StateT")

# Attribute names set on decorated functions.
START = "__flow_start__"
LISTEN = "__flow_listen__"
ROUTER = "__flow_router__"
HUMAN = "__flow_human__"
TASK = "__flow_task__"


@dataclass(frozen=True)
class Condition:
    """`or_` / `and_` over method names (or methods) and emitted outcomes."""

    kind: str  # "or" | "and"
    items: tuple[str | Condition, ...]

    def names(self) -> set[str]:
        found: set[str] = set()
        for item in self.items:
            found |= item.names() if isinstance(item, Condition) else {item}
        return found


def _name(item: Any) -> str | Condition:
    if isinstance(item, Condition):
        return item
    if isinstance(item, str):
        return item
    if callable(item):
        return item.__name__
    raise TypeError(f"a flow condition is a method, a method name or an outcome, not {item!r}")


def or_(*items: Any) -> Condition:
    return Condition("or", tuple(_name(i) for i in items))


def and_(*items: Any) -> Condition:
    return Condition("and", tuple(_name(i) for i in items))


def _as_condition(condition: Any) -> Condition:
    named = _name(condition)
    return named if isinstance(named, Condition) else Condition("or", (named,))


def start(condition: Any = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A method that runs when the flow starts (or, CrewAI-style, also when `condition` fires)."""

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, START, True)
        if condition is not None:
            setattr(func, LISTEN, _as_condition(condition))
        return func

    return mark


def listen(condition: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run after `condition`: a method's completion (name or the method) or an emitted outcome."""

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, LISTEN, _as_condition(condition))
        return func

    return mark


def router(condition: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Like `listen`, and the method's return value (a string) is emitted as the next event."""

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, LISTEN, _as_condition(condition))
        setattr(func, ROUTER, True)
        return func

    return mark


@dataclass(frozen=True)
class HumanStep:
    """What `@human_feedback` asks for; the SPEC §2 fields of the review request."""

    message: str
    emit: tuple[str, ...] = ()
    mode: str | None = None
    options: Any = None  # a list, or a dotted path into state ("articles") or a step's output ("rss.items")
    label_path: str = ""
    value_path: str = ""
    description_path: str = ""
    multiple: bool = False
    assign_to: str = ""  # an email, or "state.<path>" to take it from the state
    channel: str = "email"
    timeout: int | None = None
    default_outcome: str = ""
    on_timeout: str = "default"
    link_ttl: int | None = None
    editable: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    # Several approvers (SPEC §13): emails and "group:<name>"; policy any/all/quorum with `required`.
    approvers: tuple[str, ...] = ()
    policy: str = ""
    required: int | None = None
    veto: bool = True
    requested_by: str = ""
    # Typed forms (SPEC §14): a JSON Schema (dict) or a pydantic model class; `initial` a dict or instance.
    schema: Any = None
    initial: Any = None

    def form_schema(self) -> dict[str, Any]:
        """The request's `schema`: a pydantic model's JSON Schema with its enum `$defs` inlined (what
        cannot be, such as Optional's anyOf, stays for create's validation to refuse by name)."""
        from hitl.lib.forms import inline_refs

        schema = self.schema
        if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
            return inline_refs(schema.model_json_schema())
        return dict(schema or {})

    def form_initial(self) -> dict[str, Any]:
        initial = self.initial
        if hasattr(initial, "model_dump"):
            return dict(initial.model_dump(mode="json"))
        return dict(initial or {})

    def typed_form(self, values: Any) -> Any:
        """The listener's `result.form`: an instance of the pydantic model when the schema is one."""
        model = self.schema
        if isinstance(model, type) and hasattr(model, "model_validate") and isinstance(values, dict):
            return model.model_validate(values)
        return values


def human_feedback(
    message: str,
    emit: list[str] | tuple[str, ...] | None = None,
    *,
    mode: str | None = None,
    options: Any = None,
    label_path: str = "",
    value_path: str = "",
    description_path: str = "",
    multiple: bool = False,
    assign_to: str = "",
    channel: str = "email",
    timeout: int | None = None,
    default_outcome: str = "",
    on_timeout: str = "default",
    link_ttl: int | None = None,
    editable: bool = False,
    metadata: dict[str, Any] | None = None,
    approvers: list[str] | tuple[str, ...] | None = None,
    policy: str = "",
    required: int | None = None,
    veto: bool = True,
    requested_by: str = "",
    schema: Any = None,
    initial: Any = None,
    llm: Any = None,  # accepted for CrewAI compatibility; outcomes are matched exactly, no LLM needed
    **_ignored: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The method's return value is reviewed by a person; the run pauses until they answer."""
    step = HumanStep(
        message=message,
        emit=tuple(emit or ()),
        mode=mode,
        options=options,
        label_path=label_path,
        value_path=value_path,
        description_path=description_path,
        multiple=multiple,
        assign_to=assign_to,
        channel=channel,
        timeout=timeout,
        default_outcome=default_outcome,
        on_timeout=on_timeout,
        link_ttl=link_ttl,
        editable=editable,
        metadata=dict(metadata or {}),
        approvers=tuple(approvers or ()),
        policy=policy,
        required=required,
        veto=veto,
        requested_by=requested_by,
        schema=schema,
        initial=initial,
    )

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, HUMAN, step)
        return func

    return mark


def task(*, human_input: bool = False, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A crew-style task. With `human_input=True` the run pauses as "pending human input" after it,
    notifies the kickoff's `taskWebhookUrl`, and `resume` either continues (`is_approve: true`) or runs
    the task again with the feedback added to `self.task_context` (`is_approve: false`)."""

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, TASK, {"human_input": human_input, "task_id": name or func.__name__})
        return func

    return mark


@dataclass
class HumanFeedbackResult:
    """What a listener of a human step receives: CrewAI's HumanFeedbackResult plus the SPEC §2 fields."""

    output: Any = None
    feedback: str = ""
    outcome: str | None = None
    timestamp: datetime | None = None
    method_name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    response_type: str = ""
    text: str = ""
    choice: dict[str, Any] = field(default_factory=dict)
    choices: list[dict[str, Any]] = field(default_factory=list)
    files: list[Any] = field(default_factory=list)
    source: str | None = None
    responder: str | None = None
    edited_output: str | None = None
    status: str = ""
    decisions: list[dict[str, Any]] = field(default_factory=list)  # several approvers (SPEC §13)
    # Typed forms (SPEC §14): the values (a pydantic model instance when the step's schema is a model).
    form: Any = None
    edited_fields: list[str] = field(default_factory=list)
    content_sha256: str | None = None

    @classmethod
    def from_result(cls, result: dict[str, Any], *, output: Any, status: str) -> HumanFeedbackResult:
        responded_at = result.get("responded_at")
        return cls(
            output=output,
            feedback=result.get("feedback") or "",
            outcome=result.get("outcome"),
            timestamp=datetime.fromisoformat(responded_at.replace("Z", "+00:00")) if responded_at else None,
            method_name=result.get("method_name") or "",
            metadata=result.get("metadata") or {},
            response_type=result.get("response_type") or "",
            text=result.get("text") or "",
            choice=result.get("choice") or {},
            choices=result.get("choices") or [],
            files=result.get("files") or [],
            source=result.get("source"),
            responder=result.get("responder"),
            edited_output=result.get("edited_output"),
            status=status,
            decisions=result.get("decisions") or [],
            form=result.get("form"),
            edited_fields=result.get("edited_fields") or [],
            content_sha256=result.get("content_sha256"),
        )

    def to_json(self) -> dict[str, Any]:
        form = self.form
        data = asdict(replace(self, form=None))
        data["form"] = form.model_dump(mode="json") if hasattr(form, "model_dump") else form
        data["timestamp"] = self.timestamp.isoformat() if self.timestamp else None
        data["__human_feedback_result__"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HumanFeedbackResult:
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if values.get("timestamp"):
            values["timestamp"] = datetime.fromisoformat(values["timestamp"])
        return cls(**values)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    is_start: bool
    condition: Condition | None
    is_router: bool
    human: HumanStep | None
    task: dict[str, Any] | None
    takes_argument: bool


class Flow(Generic[StateT]):
    """Base class of server-side flows. `state` is a dict, or a pydantic model with `Flow[Model]`."""

    _state_model: ClassVar[Any] = None
    initial_state: ClassVar[Any] = None

    def __class_getitem__(cls, item: Any) -> Any:
        alias = super().__class_getitem__(item)  # type: ignore[misc]
        if isinstance(item, type):
            # `class MyFlow(Flow[MyState])` remembers the state model on the subclass via the alias.
            alias.__hitl_state_model__ = item
        return alias

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            model = getattr(base, "__hitl_state_model__", None)
            if model is not None:
                cls._state_model = model

    def __init__(self, state: Any = None, *, run_id: str = "", task_context: list[str] | None = None):
        self.run_id = run_id
        self.task_context: list[str] = list(task_context or [])
        self.last_human_feedback: HumanFeedbackResult | None = None
        self._state = self.load_state(state)

    @property
    def state(self) -> Any:
        return self._state

    @classmethod
    def load_state(cls, data: Any) -> Any:
        data = dict(data or {})
        if cls._state_model is not None:
            return cls._state_model(**data)
        base = dict(cls.initial_state or {}) if isinstance(cls.initial_state, dict) else {}
        base.update(data)
        return base

    def dump_state(self) -> dict[str, Any]:
        state = self._state
        if hasattr(state, "model_dump"):
            return dict(state.model_dump(mode="json"))
        return dict(state)

    @classmethod
    def methods(cls) -> dict[str, MethodSpec]:
        found: dict[str, MethodSpec] = {}
        members: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):  # definition order: start methods run as written
            members.update({k: v for k, v in vars(klass).items() if inspect.isfunction(v)})
        for name, func in members.items():
            if not any(hasattr(func, attr) for attr in (START, LISTEN, HUMAN, TASK)):
                continue
            params = [p for p in inspect.signature(func).parameters.values() if p.name != "self"]
            found[name] = MethodSpec(
                name=name,
                is_start=bool(getattr(func, START, False)),
                condition=getattr(func, LISTEN, None),
                is_router=bool(getattr(func, ROUTER, False)),
                human=getattr(func, HUMAN, None),
                task=getattr(func, TASK, None),
                takes_argument=bool(params),
            )
        return found

    @classmethod
    def has_human_step(cls) -> bool:
        return any(spec.human or (spec.task and spec.task["human_input"]) for spec in cls.methods().values())
