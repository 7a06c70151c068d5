"""Typed forms (SPEC §14): the JSON Schema subset a form request may carry, and its answers.

Pure helpers, no app imported: `schema_problems` checks a schema (the 2020-12 metaschema through
jsonschema, then our subset and safety rules); `form_fields` describes each field for the pages and
emails; `read_typed` (API: JSON values), `read_strings` (HTML forms: strings and string lists) and
`read_reply` (email: `field: value` lines) turn an answer into values; `check_values` validates them
all at once, so every field's problem is reported together.

Patterns never run on Python's backtracking `re`: RE2 (google-re2) runs them, in time linear in the
string by construction, and refuses at compile what it cannot run that way (backreferences,
lookarounds). They are also refused in the shapes that backtrack catastrophically elsewhere (a
client's own validator may backtrack): at most MAX_PATTERN characters, no inline flags, no quantifier
inside a quantified group and no alternation inside one; and a string a pattern checks is at most
MAX_PATTERN_VALUE characters (a schema with `pattern` must set `maxLength` within it). The
metaschema check runs jsonschema with RE2 behind its `pattern` keywords too (`validator_class`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import re2

MAX_SCHEMA_BYTES = 64 * 1024
MAX_DEPTH = 8  # object > properties > field > items > enum: a real form schema is 5 deep
MAX_FIELDS = 100
MAX_ENUM = 200
MAX_ENUM_VALUE = 200
MAX_PATTERN = 200
MAX_PATTERN_VALUE = 1000
MAX_STRING = 10_000  # any string value, pattern or not
MAX_TEXT = 2000  # titles and descriptions
NUMBER_LIMIT = 1e15  # beyond this, floats stop being exact integers
FORMATS = ("email", "date", "date-time", "uri")
TYPES = ("string", "number", "integer", "boolean", "array")

_COMMON = {"type", "title", "description", "default"}
_ALLOWED = {
    "string": _COMMON | {"enum", "enumNames", "format", "minLength", "maxLength", "pattern"},
    "number": _COMMON | {"minimum", "maximum"},
    "integer": _COMMON | {"minimum", "maximum"},
    "boolean": _COMMON,
    "array": _COMMON | {"items", "minItems", "maxItems", "uniqueItems"},
}
_TOP = {"type", "properties", "required", "title", "description", "$schema", "additionalProperties"}
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")
_TRUE = {"true", "yes", "y", "on", "1", "x", "checked", "✓", "✔"}
_FALSE = {"false", "no", "n", "off", "0", "", "unchecked", "-"}


# --- the schema ------------------------------------------------------------------------------------


def schema_problems(schema: Any) -> list[str]:
    """Every problem of `schema` as a form schema, each naming where it is ("properties.age: …");
    [] when it is fine. Bounded before anything recursive looks at it (size, depth)."""
    if not isinstance(schema, dict):
        return ["The schema must be a JSON object."]
    try:
        size = len(json.dumps(schema))
    except (TypeError, ValueError, RecursionError):
        return ["The schema must be plain JSON."]
    if size > MAX_SCHEMA_BYTES:
        return [f"The schema is {size} bytes of JSON; at most {MAX_SCHEMA_BYTES // 1024} KiB."]
    try:  # what no database stores: NUL, lone surrogates
        dumped = json.dumps(schema, ensure_ascii=False)
        dumped.encode("utf-8")
    except UnicodeError:
        return ["The schema holds invalid Unicode (a lone surrogate)."]
    if "\x00" in dumped or "\\u0000" in dumped:
        return ["The schema holds a NUL character."]
    if _depth(schema) > MAX_DEPTH:
        return [f"The schema is nested deeper than {MAX_DEPTH} levels; a form schema is an object of flat fields."]
    problems = _metaschema_problems(schema)
    if problems:
        return problems
    return _subset_problems(schema)


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            return depth
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _metaschema_problems(schema: dict[str, Any]) -> list[str]:
    validator = validator_class()(validator_class().META_SCHEMA)
    problems = []
    for error in sorted(validator.iter_errors(schema), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path) or "schema"
        problems.append(f"{where}: {error.message[:300]} (JSON Schema 2020-12)")
    return problems[:50]


@lru_cache(maxsize=1)
def validator_class() -> Any:
    """Draft 2020-12 with RE2 behind every keyword that runs a regular expression on the instance.

    Here the user's schema is only the *instance* (the metaschema is ours, and its few patterns on
    `$id`, `$anchor`, … are linear), but stock jsonschema runs `pattern`, `patternProperties` and
    `additionalProperties` (next to `patternProperties`) with `re.search`: whatever schema this class
    is ever given, none of them backtracks. (`unevaluatedProperties` with `patternProperties` still
    uses `re`; no schema of ours has it.) `format: regex` is not asserted: no format checker is passed."""
    from jsonschema import Draft202012Validator, ValidationError, validators
    from jsonschema._keywords import additionalProperties as stock_additional

    def pattern(validator: Any, patrn: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
        if validator.is_type(instance, "string") and not pattern_matches(patrn, instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    def pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, schema: Any) -> Iterator[Any]:
        if not validator.is_type(instance, "object"):
            return
        for patrn, subschema in patterns.items():
            for key, value in instance.items():
                if pattern_matches(patrn, key):
                    yield from validator.descend(value, subschema, path=key, schema_path=patrn)

    def additional_properties(validator: Any, ap: Any, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
        if "patternProperties" not in schema or not validator.is_type(instance, "object"):
            yield from stock_additional(validator, ap, instance, schema)  # runs no pattern then
            return
        known, patterns = schema.get("properties", {}), schema["patternProperties"]
        extras = sorted(
            key for key in instance if key not in known and not any(pattern_matches(p, key) for p in patterns)
        )
        if validator.is_type(ap, "object"):
            for extra in extras:
                yield from validator.descend(instance[extra], ap, path=extra)
        elif not ap and extras:
            yield ValidationError(
                f"{', '.join(map(repr, extras))} {'does' if len(extras) == 1 else 'do'} not match any of the "
                f"regexes: {', '.join(map(repr, sorted(patterns)))}"
            )

    return validators.extend(
        Draft202012Validator,
        {"pattern": pattern, "patternProperties": pattern_properties, "additionalProperties": additional_properties},
    )


def _subset_problems(schema: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for key in sorted(set(schema) - _TOP):
        problems.append(f"{key}: not supported in a form schema (SPEC §14 subset: {', '.join(sorted(_TOP))}).")
    if schema.get("type") != "object":
        problems.append('type: a form schema is {"type": "object", "properties": {…}}.')
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        problems.append("properties: give at least one field.")
        properties = {}
    elif len(properties) > MAX_FIELDS:
        problems.append(f"properties: at most {MAX_FIELDS} fields.")
    for key in ("title", "description"):
        if len(str(schema.get(key, ""))) > MAX_TEXT:
            problems.append(f"{key}: at most {MAX_TEXT} characters.")
    if schema.get("additionalProperties") not in (None, False):
        problems.append("additionalProperties: only false is supported (a form has exactly its fields).")
    required = schema.get("required", [])
    for name in required if isinstance(required, list) else []:
        if name not in properties:
            problems.append(f"required: {name!r} is not one of the properties.")
    for name, prop in properties.items():
        problems.extend(f"properties.{name}: {p}" for p in _field_problems(name, prop))
    return problems


def _field_problems(name: str, prop: Any) -> list[str]:
    if not name or len(name) > 100 or not name.strip() or any(ch in name for ch in ":\n\r"):
        return ["a field name is 1 to 100 characters, without ':' or line breaks."]
    if not isinstance(prop, dict):
        return ["a field is a JSON object."]
    if "$ref" in prop or "anyOf" in prop or "oneOf" in prop or "allOf" in prop:
        return ["$ref, anyOf, oneOf and allOf are not supported: inline enums, and make optional fields not required."]
    kind = prop.get("type")
    if kind not in TYPES:
        return [f"type must be one of {', '.join(TYPES)} (got {kind!r})."]
    problems = [f"{key}: not supported for a {kind} field." for key in sorted(set(prop) - _ALLOWED[kind])]
    for key in ("title", "description"):
        if key in prop and (not isinstance(prop[key], str) or len(prop[key]) > MAX_TEXT):
            problems.append(f"{key}: a string of at most {MAX_TEXT} characters.")
    if kind == "string":
        problems.extend(_string_problems(prop))
    elif kind in ("number", "integer"):
        for key in ("minimum", "maximum"):
            if key in prop and (not _is_number(prop[key]) or abs(prop[key]) > NUMBER_LIMIT):
                problems.append(f"{key}: a number within ±{NUMBER_LIMIT:.0e}.")
        if _is_number(prop.get("minimum")) and _is_number(prop.get("maximum")) and prop["minimum"] > prop["maximum"]:
            problems.append("minimum is greater than maximum.")
    elif kind == "array":
        items = prop.get("items")
        if not isinstance(items, dict) or items.get("type") != "string" or not isinstance(items.get("enum"), list):
            problems.append('items: a multi-select is {"type": "string", "enum": [...]} (arrays of enum strings).')
        else:
            problems.extend(
                f"items.{key}: not supported." for key in sorted(set(items) - {"type", "enum", "enumNames"})
            )
            problems.extend(f"items.{p}" for p in _enum_problems(items))
        for key in ("minItems", "maxItems"):
            if key in prop and (not isinstance(prop[key], int) or isinstance(prop[key], bool)):
                problems.append(f"{key}: a whole number.")
    if not problems and "default" in prop:
        errors = field_errors(describe(name, prop, required=False), prop["default"])
        problems.extend(f"default: {e}" for e in errors)
    return problems


def _string_problems(prop: dict[str, Any]) -> list[str]:
    problems = []
    if "enum" in prop:
        problems.extend(_enum_problems(prop))
    if "format" in prop and prop["format"] not in FORMATS:
        problems.append(f"format: one of {', '.join(FORMATS)} (got {str(prop['format'])[:40]!r}).")
    for key in ("minLength", "maxLength"):
        if key in prop and isinstance(prop[key], int) and prop[key] > MAX_STRING:
            problems.append(f"{key}: at most {MAX_STRING}.")
    if "pattern" in prop:
        problem = pattern_problem(prop["pattern"])
        if problem:
            problems.append(f"pattern: {problem}")
        elif not isinstance(prop.get("maxLength"), int) or prop["maxLength"] > MAX_PATTERN_VALUE:
            problems.append(
                f"pattern: a field with a pattern needs maxLength of at most {MAX_PATTERN_VALUE} "
                "(patterns are only checked against bounded strings)."
            )
    return problems


def _enum_problems(prop: dict[str, Any]) -> list[str]:
    enum = prop.get("enum")
    if not isinstance(enum, list) or not enum:
        return ["enum: a non-empty list of strings."]
    problems = []
    if len(enum) > MAX_ENUM:
        problems.append(f"enum: at most {MAX_ENUM} values.")
    if not all(isinstance(v, str) and v.strip() and len(v) <= MAX_ENUM_VALUE for v in enum):
        problems.append(f"enum: every value is a non-empty string of at most {MAX_ENUM_VALUE} characters.")
    elif len({v.strip().lower() for v in enum}) != len(enum):
        problems.append("enum: values must differ (compared case-insensitively).")
    names = prop.get("enumNames")
    if names is not None and (
        not isinstance(names, list) or len(names) != len(enum) or not all(isinstance(n, str) for n in names)
    ):
        problems.append("enumNames: one string label per enum value.")
    return problems


_REPEATS = {"MAX_REPEAT", "MIN_REPEAT"}


def _re2_options() -> Any:
    options = re2.Options()
    options.encoding = re2.Options.Encoding.UTF8  # patterns and values are text; Latin-1 would be bytes
    # Per compiled pattern (re2 and _compiled each keep at most 128): a 200-character pattern needs far
    # less, and what needs more (counted repetitions of big classes, \pL{1000}) is refused as too complex.
    options.max_mem = 1 << 20
    options.never_capture = True  # only "does it match" is asked: no submatches to track
    options.log_errors = False  # a refused pattern is the client's mistake, not a line on our stderr
    # The rest stays RE2's default, as ECMA-262 without flags has it: case-sensitive, `.` not matching
    # \n, `^`/`$` only at the ends of the string (Python's `$` also matches before a final \n).
    return options


_RE2_OPTIONS = _re2_options()
_ESCAPE = re.compile(r"\\(?:(Z)|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|.)", re.DOTALL)


def _re2_syntax(pattern: str) -> str:
    r"""`pattern` as RE2 spells it. Where the dialects differ:

    - `\uXXXX` (ECMA-262 and Python) and `\UXXXXXXXX` (Python) are RE2's `\x{…}`; `\Z` (Python's end of
      string) is RE2's `\z`. These are rewritten; every other escape is left as it is.
    - `\d`, `\w`, `\b` are ASCII in RE2, as in ECMA-262 (Python's are Unicode: it took "٣" as a digit);
      `\s` is ASCII too, `[\t\n\f\r ]`, where ECMA's also takes \v, NBSP, U+2028 and the other Unicode
      spaces.
    - `a{,5}` is the literal text in RE2 and ECMA-262, {0,5} in Python; counted repetitions go up to
      1000. What RE2 runs but Python's parser does not read (`\p{L}`, `\z`, ECMA's named groups
      `(?<n>…)`) is refused by the portable check (`_portable_problem`), as are inline flags; RE2
      itself refuses backreferences and lookarounds.

    The review page does not set the HTML `pattern` attribute (a browser runs it anchored, with
    ECMA's `v` flag: other answers than these), so the server's answer is the only one.
    """

    def spell(match: re.Match[str]) -> str:
        if match.group(1):
            return r"\z"
        hex_digits = match.group(2) or match.group(3)
        return "\\x{" + hex_digits + "}" if hex_digits else match.group(0)

    return _ESCAPE.sub(spell, pattern)


@lru_cache(maxsize=128)
def _compiled(pattern: str) -> Any:
    """The RE2 program of a JSON Schema `pattern`. Raises re2.error (and UnicodeError on a lone surrogate)."""
    return re2.compile(_re2_syntax(pattern), _RE2_OPTIONS)


def pattern_matches(pattern: str, value: str) -> bool:
    """JSON Schema's `pattern`: whether it matches anywhere in `value` (a search, not anchored), in
    time linear in the value. A value that is not valid Unicode (a lone surrogate) matches nothing."""
    try:
        data = value.encode("utf-8")
    except UnicodeError:
        return False
    return _compiled(pattern).search(data) is not None


_REFUSED = "backreferences, lookarounds and atomic groups are not supported."


def _re2_problem(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else ""
    detail = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    if detail.startswith("invalid perl operator: (?") and (detail[-1] in "=!>(" or detail.endswith("(?P")):
        return _REFUSED  # (?=, (?!, (?<=, (?<!, (?>, (?(, (?P=
    if detail.startswith("invalid escape sequence: \\") and detail[-1:] in "123456789k":
        return _REFUSED  # \1 … \9, \k<name>
    if detail.startswith("bad repetition operator: ") and detail.endswith("+"):
        return _REFUSED  # a possessive quantifier, an atomic group's shorthand
    if detail.startswith("invalid repetition size"):
        return f"a counted repetition is at most 1000, nested ones multiplied ({detail[:60]})."
    if detail.startswith("pattern too large"):
        return "too complex once counted repetitions are expanded: simplify it."
    return f"not a valid regular expression ({detail[:100]})."


def pattern_problem(pattern: Any) -> str | None:
    """Why `pattern` is refused, or None: too long, not something RE2 runs (not a valid regular
    expression, a backreference or lookaround), or outside the portable subset (see the module's
    docstring)."""
    if not isinstance(pattern, str) or not pattern:
        return "a non-empty string."
    if len(pattern) > MAX_PATTERN:
        return f"at most {MAX_PATTERN} characters (got {len(pattern)})."
    try:
        _compiled(pattern)
    except re2.error as exc:
        return _re2_problem(exc)
    except UnicodeError:
        return "not valid Unicode (a lone surrogate)."
    return _portable_problem(pattern)


def _portable_problem(pattern: str) -> str | None:
    """What RE2 runs safely but a backtracking validator elsewhere (a client's) may not, read with
    Python's parser (a parse, never a match)."""
    try:
        from re import _parser  # type: ignore[attr-defined]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "possible nested set" on [[:alpha:]]
            parsed = _parser.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return f"not a valid regular expression ({str(exc)[:100]})."
    if parsed.state.flags & ~(re.UNICODE | getattr(re, "TEMPLATE", 0)):
        return "inline flags like (?i) are not supported (ECMA-262 has none)."
    try:
        _check_tree(parsed, inside_repeat=False)
    except ValueError as exc:
        return str(exc).rstrip(".") + "."
    return None


def _check_tree(items: Any, *, inside_repeat: bool) -> None:
    for op, arg in items:
        name = str(op)
        if name in _REPEATS:
            if inside_repeat:
                raise ValueError(
                    "a quantifier inside a quantified group (like (a+)+) can take exponential time: refused."
                )
            _check_tree(arg[2], inside_repeat=True)
        elif name == "SUBPATTERN":
            if arg[1] or arg[2]:  # (?i:…)
                raise ValueError("inline flags like (?i) are not supported (ECMA-262 has none).")
            _check_tree(arg[-1], inside_repeat=inside_repeat)
        elif name == "BRANCH":
            if inside_repeat:
                raise ValueError("an alternation inside a quantified group (like (a|a)*) can take exponential time.")
            for branch in arg[1]:
                _check_tree(branch, inside_repeat=inside_repeat)


# --- fields ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormField:
    """One field as pages and emails show it."""

    name: str
    kind: str  # string, number, integer, boolean, array
    label: str
    description: str
    required: bool
    enum: list[str] = field(default_factory=list)
    enum_labels: list[str] = field(default_factory=list)
    format: str = ""
    min_length: int | None = None
    max_length: int | None = None
    pattern: str = ""
    minimum: float | None = None
    maximum: float | None = None
    min_items: int | None = None
    max_items: int | None = None
    default: Any = None
    has_default: bool = False

    @property
    def input_type(self) -> str:
        """The HTML input type (select and checkbox groups are chosen by the template)."""
        if self.kind in ("number", "integer"):
            return "number"
        if self.kind == "boolean":
            return "checkbox"
        return {"email": "email", "date": "date", "date-time": "datetime-local", "uri": "url"}.get(self.format, "text")

    @property
    def widget(self) -> str:
        if self.kind == "array":
            return "checkboxes"
        if self.kind == "string" and self.enum:
            return "select"
        return "input"

    @property
    def choices(self) -> list[tuple[str, str]]:
        return list(zip(self.enum, self.enum_labels or self.enum, strict=True))

    @property
    def step(self) -> str:
        return "1" if self.kind == "integer" else "any"

    def hint(self) -> str:
        """How to answer this field, for the email and the error email."""
        if self.kind == "boolean":
            return "yes or no"
        if self.kind == "array":
            return "one or more of " + ", ".join(self.enum) + " (comma-separated)"
        if self.enum:
            return "one of " + ", ".join(self.enum)
        parts = []
        if self.kind in ("number", "integer"):
            parts.append("a whole number" if self.kind == "integer" else "a number")
            if self.minimum is not None:
                parts.append(f"at least {_num(self.minimum)}")
            if self.maximum is not None:
                parts.append(f"at most {_num(self.maximum)}")
            return ", ".join(parts)
        parts.append(
            {
                "email": "an email address",
                "date": "a date (YYYY-MM-DD)",
                "date-time": "a date and time (YYYY-MM-DDTHH:MM)",
                "uri": "a URL (https://…)",
            }.get(self.format, "text")
        )
        if self.min_length:
            parts.append(f"at least {self.min_length} characters")
        if self.max_length is not None:
            parts.append(f"at most {self.max_length} characters")
        if self.pattern:
            parts.append(f"matching {self.pattern}")
        return ", ".join(parts)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def describe(name: str, prop: dict[str, Any], *, required: bool) -> FormField:
    items: dict[str, Any] = prop["items"] if isinstance(prop.get("items"), dict) else {}
    source: dict[str, Any] = items if prop.get("type") == "array" else prop
    return FormField(
        name=name,
        kind=str(prop.get("type")),
        label=str(prop.get("title") or name),
        description=str(prop.get("description") or ""),
        required=required,
        enum=[str(v) for v in source.get("enum") or []],
        enum_labels=[str(v) for v in source.get("enumNames") or []],
        format=str(prop.get("format") or ""),
        min_length=prop.get("minLength"),
        max_length=prop.get("maxLength"),
        pattern=str(prop.get("pattern") or ""),
        minimum=prop.get("minimum"),
        maximum=prop.get("maximum"),
        min_items=prop.get("minItems"),
        max_items=prop.get("maxItems"),
        default=prop.get("default"),
        has_default="default" in prop,
    )


def form_fields(schema: dict[str, Any]) -> list[FormField]:
    """The schema's fields, in its order."""
    required = set(schema.get("required") or [])
    return [describe(name, prop, required=name in required) for name, prop in (schema.get("properties") or {}).items()]


def prefill(schema: dict[str, Any], initial: dict[str, Any]) -> dict[str, Any]:
    """What the form shows before anyone typed: `initial`, else each field's `default`."""
    values = {f.name: f.default for f in form_fields(schema) if f.has_default}
    values.update({k: v for k, v in (initial or {}).items() if k in values or k in (schema.get("properties") or {})})
    return values


# --- values ----------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def field_errors(spec: FormField, value: Any) -> list[str]:
    """What is wrong with a typed `value` for `spec` (not the required check), each with how to fix it."""
    fix = f"Expected {spec.hint()}."
    if spec.kind == "boolean":
        return [] if isinstance(value, bool) else [f"Must be true or false. {fix}"]
    if spec.kind in ("number", "integer"):
        if not _is_number(value) or (spec.kind == "integer" and not float(value).is_integer()):
            return [f"Must be {'a whole number' if spec.kind == 'integer' else 'a number'}. {fix}"]
        if spec.minimum is not None and value < spec.minimum:
            return [f"Must be at least {_num(spec.minimum)}. {fix}"]
        if spec.maximum is not None and value > spec.maximum:
            return [f"Must be at most {_num(spec.maximum)}. {fix}"]
        return []
    if spec.kind == "array":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return [f"Must be a list of options. {fix}"]
        unknown = [v for v in value if v not in spec.enum]
        if unknown:
            return [f"Not an option: {', '.join(repr(u[:50]) for u in unknown[:5])}. {fix}"]
        if len(set(value)) != len(value):
            return ["Each option at most once."]
        if spec.min_items is not None and len(value) < spec.min_items:
            return [f"Pick at least {spec.min_items}. {fix}"]
        if spec.max_items is not None and len(value) > spec.max_items:
            return [f"Pick at most {spec.max_items}. {fix}"]
        return []
    if not isinstance(value, str):
        return [f"Must be text. {fix}"]
    if "\x00" in value:
        return ["Must not contain NUL characters."]
    try:
        value.encode("utf-8")
    except UnicodeError:
        return ["Must be valid Unicode text."]
    if len(value) > MAX_STRING:
        return [f"At most {MAX_STRING} characters."]
    if spec.enum:
        return [] if value in spec.enum else [f"{value[:50]!r} is not an option. {fix}"]
    errors = []
    if spec.min_length is not None and len(value) < spec.min_length:
        errors.append(f"At least {spec.min_length} characters (got {len(value)}).")
    if spec.max_length is not None and len(value) > spec.max_length:
        errors.append(f"At most {spec.max_length} characters (got {len(value)}).")
    if spec.format and not _format_ok(spec.format, value):
        errors.append(f"Not {spec.hint().split(',')[0]}: {value[:60]!r}.")
    # Patterns run on RE2, in linear time, on bounded strings (maxLength ≤ MAX_PATTERN_VALUE).
    if spec.pattern and len(value) <= MAX_PATTERN_VALUE:
        try:
            matched = pattern_matches(spec.pattern, value)
        except re2.error:  # a schema stored before RE2 checked it: fail closed, and say why
            errors.append(f"The form's pattern {spec.pattern} cannot be checked; ask whoever sent the form.")
        else:
            if not matched:
                errors.append(f"Does not match the expected pattern {spec.pattern}.")
    return errors


def _format_ok(fmt: str, value: str) -> bool:
    if fmt == "email":
        return bool(_EMAIL.match(value)) and len(value) <= 254
    if fmt == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
        return len(value) == 10
    if fmt == "date-time":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
        return "T" in value or " " in value
    if fmt == "uri":
        try:
            parts = urlsplit(value)
        except ValueError:
            return False
        return bool(parts.scheme and (parts.netloc or parts.path)) and not any(c.isspace() for c in value)
    return True


def check_values(schema: dict[str, Any], values: dict[str, Any], *, partial: bool = False) -> dict[str, list[str]]:
    """Every field's problems at once, {name: [message, …]}; {} when the values fit. `partial` (for
    `initial`) skips the required check."""
    fields = {f.name: f for f in form_fields(schema)}
    errors: dict[str, list[str]] = {}
    for name in values:
        if name not in fields:
            errors.setdefault(str(name)[:100], []).append(
                f"Not a field of this form (fields: {', '.join(list(fields)[:20])})."
            )
    for name, spec in fields.items():
        if name not in values or values[name] is None or values[name] == "" or values[name] == []:
            # A field left out takes its default (`complete`), so only one without a default is missing.
            if not partial and spec.required and not spec.has_default:
                errors.setdefault(name, []).append(f"Required. Expected {spec.hint()}.")
            continue
        problems = field_errors(spec, values[name])
        if problems:
            errors[name] = problems
    return errors


def complete(schema: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The validated values as the result holds them: in the schema's order, empty optional fields
    left out, missing ones with a `default` filled in; integers as ints."""
    done: dict[str, Any] = {}
    for spec in form_fields(schema):
        value = values.get(spec.name)
        if value is None or value == "" or (value == [] and not spec.required):
            if spec.has_default:
                done[spec.name] = spec.default
            continue
        if spec.kind == "integer":
            value = int(value)
        done[spec.name] = value
    return done


def edited_fields(values: dict[str, Any], initial: dict[str, Any]) -> list[str]:
    """The names whose value differs from `initial` (a field absent from `initial` differs when given)."""
    names = list(values) + [n for n in initial or {} if n not in values]
    return [n for n in names if values.get(n) != (initial or {}).get(n)]


def content_sha256(text: str | None) -> str:
    """SHA-256 (hex) of the content a decision was made on (SPEC §14)."""
    return hashlib.sha256((text or "").encode("utf-8", "surrogatepass")).hexdigest()


# --- reading answers -------------------------------------------------------------------------------


def read_typed(schema: dict[str, Any], data: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """An API's `data`: JSON values as given (no string coercion), checked shape only."""
    if not isinstance(data, dict):
        return {}, {"data": ['An object of the form\'s fields: {"name": value, …}.']}
    return dict(data), {}


def coerce(spec: FormField, raw: Any) -> tuple[Any, str | None]:
    """A string (or list of strings) typed into a page or an email → the field's type; (None, why)
    when it does not read as one."""
    if spec.kind == "array":
        parts = raw if isinstance(raw, list) else [p for p in re.split(r"\s*[,;]\s*", str(raw).strip()) if p]
        picked = []
        for part in parts:
            match = _match_enum(spec, str(part))
            if match is None:
                return None, f"{str(part)[:50]!r} is not an option. Expected {spec.hint()}."
            picked.append(match)
        return picked, None
    text = str(raw[-1] if isinstance(raw, list) and raw else raw if not isinstance(raw, list) else "").strip()
    if spec.kind == "boolean":
        word = text.lower().rstrip(".!")
        if word in _TRUE:
            return True, None
        if word in _FALSE:
            return False, None
        return None, f"{text[:30]!r} is not yes or no."
    if text == "":
        return None, None
    if spec.kind in ("number", "integer"):
        cleaned = text.replace("_", "").replace(" ", "")
        try:
            if spec.kind == "integer":
                if not re.fullmatch(r"[+-]?\d{1,16}(\.0*)?", cleaned):
                    raise ValueError
                return int(float(cleaned)), None
            if len(cleaned) > 40:
                raise ValueError
            number = float(cleaned)
            if not math.isfinite(number):
                raise ValueError
            return (int(number) if number.is_integer() and "." not in cleaned else number), None
        except ValueError:
            return None, f"{text[:30]!r} is not {'a whole number' if spec.kind == 'integer' else 'a number'}."
    if spec.enum:
        match = _match_enum(spec, text)
        return (match, None) if match is not None else (text, None)  # field_errors names the options
    if spec.format == "date-time" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text):
        text += ":00"  # what <input type=datetime-local> sends, as RFC 3339 wants it
    return text, None


def _match_enum(spec: FormField, text: str) -> str | None:
    wanted = text.strip().strip(".!").strip().lower()
    for value, label in spec.choices:
        if wanted in (value.lower(), label.lower()):
            return value
    return None


def read_strings(schema: dict[str, Any], data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """An HTML form's values (`data[name]` a string, or a list for checkbox groups; an unchecked
    checkbox is absent) → typed values and the fields that did not read."""
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for spec in form_fields(schema):
        if spec.name not in data:
            if spec.kind == "boolean":
                values[spec.name] = False
            elif spec.kind == "array":
                values[spec.name] = []
            continue
        value, problem = coerce(spec, data[spec.name])
        if problem:
            errors[spec.name] = [problem]
        elif value is not None:
            values[spec.name] = value
    return values, errors


_LINE = re.compile(r"^\s*[-*•]?\s*([^:\n]{1,120}?)\s*[:=]\s*(.*?)\s*$")


def read_reply(
    schema: dict[str, Any], text: str, initial: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, list[str]], str]:
    """An email reply's `field: value` lines (label or name, case-insensitive) → typed values, the
    fields that did not read, and the other lines (passed on as feedback). Fields not named keep
    their initial or default value."""
    fields = form_fields(schema)
    by_name: dict[str, FormField] = {}
    for spec in fields:
        by_name.setdefault(spec.name.lower(), spec)
        by_name.setdefault(spec.label.strip().lower(), spec)
    values = prefill(schema, initial or {})
    errors: dict[str, list[str]] = {}
    rest: list[str] = []
    for line in (text or "").splitlines()[:500]:
        match = _LINE.match(line)
        found = by_name.get(match.group(1).strip().lower()) if match else None
        if match is None or found is None:
            if line.strip():
                rest.append(line)
            continue
        value, problem = coerce(found, match.group(2))
        if problem:
            errors[found.name] = [problem]
        else:
            errors.pop(found.name, None)
            values[found.name] = value if value is not None else ([] if found.kind == "array" else None)
    values = {k: v for k, v in values.items() if v is not None}
    return values, errors, "\n".join(rest).strip()


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic `model_json_schema()` made a form schema: local `$ref`s to `$defs` (enums) inlined,
    `$defs` dropped. Anything else it cannot turn into the subset stays, for `schema_problems` to name."""
    defs = schema.get("$defs") or {}

    def resolve(node: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            return node
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs:
                # The def's title is its class name; the field's own title (or its name) is the label.
                target = {k: v for k, v in defs[ref[8:]].items() if k != "title"}
                merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
                return resolve(merged, depth + 1)
            return {k: resolve(v, depth + 1) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v, depth + 1) for v in node]
        return node

    inlined = resolve(schema)
    for prop in (inlined.get("properties") or {}).values():
        if isinstance(prop, dict) and isinstance(prop.get("items"), dict):
            prop["items"].pop("title", None)  # an inlined enum's class name, not the subset's
        if isinstance(prop, dict) and "enum" in prop and "type" not in prop:
            prop["type"] = "string"
    return inlined
