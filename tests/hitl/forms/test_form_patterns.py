"""`pattern` runs on RE2 (google-re2), in time linear in the string: a JSON Schema search with
ECMA-262's answers where RE2 and ECMA agree, what RE2 cannot run refused at the schema check, and
jsonschema itself never handed a pattern for Python's backtracking `re`."""

from __future__ import annotations

import json
import random
import re
import time

import pytest

from hitl.lib.forms import (
    MAX_PATTERN_VALUE,
    describe,
    field_errors,
    pattern_matches,
    pattern_problem,
    schema_problems,
    validator_class,
)
from tests.support.base import World

PATTERNS = [
    r"^[a-z]+@[a-z]+\.[a-z]{2,}$",
    r"^\d{3}-\d{4}$",
    r"^[A-Z]{2}\d{2}[A-Z0-9]{1,30}$",
    r"(ab)*c",
    r"^(foo|bar|baz)-\d+$",
    r"\d*\d*\d*x",
    r"\bcat\b",
    r"^[^\s@]+$",
    r"colou?r",
    r"^.{2,5}$",
    r"x{2,3}?y",
    r"\Aab\Z",
    r"[\w.-]+",
    r"caf\u00e9",
    r"^[\u00C0-\u017F]+$",
]
HOSTILE = (r"\d*\d*\d*\d*x", r"(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)b", r"\w+\s*\w+\s*\w+x")
REFUSED = "backreferences, lookarounds and atomic groups are not supported."


def ecma_search(pattern: str, text: str) -> bool:
    """ECMA-262's answer, through Python: ASCII classes, and `$` only at the very end."""
    return bool(re.search(pattern.replace("$", r"\Z"), text, re.ASCII))


class TestLinearPatterns:
    @pytest.mark.parametrize("pattern", PATTERNS)
    def test_it_answers_as_ecma_search_does(self, pattern: str) -> None:
        assert pattern_problem(pattern) is None
        rnd = random.Random(pattern)
        for _ in range(500):
            text = "".join(rnd.choice("ab1x c@.-fooAZ\n_yé٣") for _ in range(rnd.randint(0, 12)))
            assert pattern_matches(pattern, text) == ecma_search(pattern, text), text

    def test_where_it_differs_from_pythons_re(self) -> None:
        assert pattern_matches(r"^\d+$", "٣٤") is False and re.search(r"^\d+$", "٣٤")  # ASCII \d, as ECMA
        assert pattern_matches(r"^\w+$", "é") is False and re.search(r"^\w+$", "é")
        assert pattern_matches(r"^\d{3}$", "123\n") is False and re.search(r"^\d{3}$", "123\n")
        assert pattern_matches(r"^a{,2}$", "a{,2}") is True and not re.search(r"^a{,2}$", "a{,2}")
        assert pattern_matches(r"^\d+$", "0123") is True and pattern_matches("b", "abc") is True  # a search

    def test_what_backtracks_for_minutes_is_linear_here(self) -> None:
        # re.search(r"\d*\d*\d*x", "1" * 500) takes Python's engine minutes; RE2: microseconds.
        started = time.monotonic()
        for pattern in HOSTILE:
            assert pattern_problem(pattern) is None
            assert pattern_matches(pattern, "1" * MAX_PATTERN_VALUE) is False
            assert pattern_matches(pattern, "1" * 100_000 + " ab ab abx") is (pattern != HOSTILE[1])
        assert time.monotonic() - started < 3

    @pytest.mark.parametrize(
        "pattern",
        [r"(a)\1", r"(?P<n>a)(?P=n)", r"(?=a)", r"(?!a)b", r"(?<=a)b", r"(?<!a)b", r"(?>a)", r"a*+", r"(?(1)a|b)"],
    )
    def test_what_re2_cannot_run_is_refused_as_before(self, pattern: str) -> None:
        assert pattern_problem(pattern) == REFUSED

    @pytest.mark.parametrize(
        ("pattern", "needle"),
        [
            (r"(?i)abc", "inline flags"),
            (r"(?i:a)bc", "inline flags"),
            ("a{1,5000}", "at most 1000"),
            (r"(a{100}){100}", "at most 1000"),
            (r"\pL{1000}", "too complex"),
            ("(unclosed", "not a valid regular expression (missing )"),
            (r"\pL", "not a valid regular expression"),  # RE2 runs it, Python's parser (the shape check) does not
            ("a" * 201, "at most 200 characters"),
            ("\ud800", "lone surrogate"),
            ("(a+)+$", "exponential"),
            ("(ab|cd)*e", "exponential"),
        ],
    )
    def test_what_is_refused_says_why(self, pattern: str, needle: str) -> None:
        assert needle in (pattern_problem(pattern) or "")


class TestInvalidUnicode:
    def test_a_lone_surrogate_matches_nothing_and_is_a_field_error(self) -> None:
        assert pattern_matches("x", "\ud800x") is False
        spec = describe("code", {"type": "string", "pattern": "x", "maxLength": 10}, required=True)
        assert field_errors(spec, "\ud800x") == ["Must be valid Unicode text."]


class TestJsonschemaRunsRe2:
    """The metaschema check's jsonschema runs RE2 for `pattern`, `patternProperties` and
    `additionalProperties` beside them: stock jsonschema takes hours on these with `re`."""

    def test_pattern_is_searched_by_re2(self) -> None:
        errors = list(validator_class()({"pattern": HOSTILE[0]}).iter_errors("1" * 20_000))
        assert len(errors) == 1 and "does not match" in errors[0].message
        assert list(validator_class()({"pattern": HOSTILE[0]}).iter_errors("1" * 20_000 + "x")) == []

    def test_pattern_properties_and_additional_properties_are_too(self) -> None:
        schema = {"patternProperties": {HOSTILE[0]: {"type": "integer"}}, "additionalProperties": False}
        instance = {"1" * 20_000 + "x": "not an integer", "1" * 20_000: 1}
        messages = [e.message for e in validator_class()(schema).iter_errors(instance)]
        assert len(messages) == 2, messages
        assert sum("is not of type 'integer'" in m for m in messages) == 1
        assert sum(m.endswith("does not match any of the regexes: '\\\\d*\\\\d*\\\\d*\\\\d*x'") for m in messages) == 1
        assert list(validator_class()({"properties": {"a": {}}, "additionalProperties": False}).iter_errors({"b": 1}))

    def test_a_hostile_schema_gets_its_problems_not_a_hang(self) -> None:
        schema = {
            "type": "object",
            "$id": "1" * 40_000 + "##",  # the metaschema's own pattern on $id, on a long string
            "patternProperties": {HOSTILE[0]: {"type": "string", "pattern": HOSTILE[0]}},
            "properties": {"code": {"type": "string", "pattern": "(\\d*)*x", "maxLength": 10}},
        }
        problems = schema_problems(schema)
        assert (
            len(problems) == 1
            and problems[0].startswith("$id: '1111")
            and problems[0].endswith("(JSON Schema 2020-12)")
        )
        del schema["$id"]
        assert schema_problems(schema) == [
            "patternProperties: not supported in a form schema (SPEC §14 subset: $schema, additionalProperties, "
            "description, properties, required, title, type).",
            "properties.code: pattern: a quantifier inside a quantified group (like (a+)+) can take exponential "
            "time: refused.",
        ]


@pytest.mark.django_db
class TestPatternAnswers:
    def test_a_pattern_is_checked_against_the_answer(self, world: World) -> None:
        schema = {
            "type": "object",
            "properties": {"code": {"type": "string", "pattern": r"\d*\d*\d*x", "maxLength": 1000}},
        }
        created = (
            world.client_for("key").post("/api/v1/requests/", {"message": "x", "schema": schema}, format="json").json()
        )
        url = f"/api/v1/requests/{created['id']}/respond/"
        started = time.monotonic()
        refused = world.client_for("key").post(url, {"data": {"code": "1" * 1000}}, format="json")
        assert refused.status_code == 400 and "pattern" in refused.json()["errors"]["code"][0]
        assert time.monotonic() - started < 5
        surrogate = world.client_for("key").post(
            url, json.dumps({"data": {"code": "\\ud800x"}}).replace("\\\\", "\\"), content_type="application/json"
        )
        assert surrogate.status_code == 400, surrogate.content
        assert surrogate.json()["code"] == "invalid_text"  # refused before the form (field_errors: above)
        accepted = world.client_for("key").post(url, {"data": {"code": "12x"}}, format="json")
        assert accepted.status_code == 200 and accepted.json()["form"] == {"code": "12x"}
