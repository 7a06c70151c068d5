"""`pattern` runs in linear time (hitl.lib.regex_nfa): the same yes/no as `re.search`, and patterns
that take Python's backtracking engine minutes answer at once."""

from __future__ import annotations

import random
import re
import time

import pytest

from hitl.lib.forms import MAX_PATTERN_VALUE, pattern_problem
from hitl.lib.regex_nfa import PatternError, compile_pattern, search
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
]


class TestLinearPatterns:
    @pytest.mark.parametrize("pattern", PATTERNS)
    def test_it_answers_as_re_search_does(self, pattern: str) -> None:
        assert pattern_problem(pattern) is None
        rnd = random.Random(pattern)
        for _ in range(500):
            text = "".join(rnd.choice("ab1x c@.-fooAZ\n_y") for _ in range(rnd.randint(0, 12)))
            assert search(pattern, text) == bool(re.search(pattern, text)), text

    def test_what_backtracks_for_minutes_is_linear_here(self) -> None:
        # re.search(r"\d*\d*\d*x", "1" * 500) takes Python's engine minutes; here: milliseconds.
        started = time.monotonic()
        for pattern in (r"\d*\d*\d*\d*x", r"(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)b", r"\w+\s*\w+\s*\w+x"):
            assert search(pattern, "1" * MAX_PATTERN_VALUE) is False
        assert time.monotonic() - started < 3

    def test_what_an_nfa_cannot_run_is_refused(self) -> None:
        for pattern in (r"(a)\1", r"(?=a)", r"(?i)abc", "a{1,5000}"):
            with pytest.raises((PatternError, re.error)):
                compile_pattern(pattern)
            assert pattern_problem(pattern)


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
        accepted = world.client_for("key").post(url, {"data": {"code": "12x"}}, format="json")
        assert accepted.status_code == 200 and accepted.json()["form"] == {"code": "12x"}
