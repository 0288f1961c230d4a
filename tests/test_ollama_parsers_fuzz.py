"""Bounded fuzzing of what the Ollama parts parse: Go templates, Go durations, `/api/show` parameters.

Each property runs a bounded number of examples with a deadline; inputs are capped in size, and
the parsers bound what they scan themselves (asserted below with inputs past the caps).
"""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from homelab.go_syntax import MAX_DURATION_CHARS, MAX_TEMPLATE_CHARS, go_duration_s, go_template_problem
from homelab.ollama.api import parse_parameters

_FAST = settings(max_examples=200, deadline=500)
_TEMPLATE_PIECES = st.sampled_from(
    ["{{", "}}", "{{-", "-}}", " ", ".Prompt", "if", "end", "range", "else", "$x", ":=", "'", '"', "`", "(", ")",
     "|", "+", "{%", "%}", "/*", "*/", "json", "bos_token", "\n", "x", "1.5", "-"]
)  # fmt: skip
_UNITS = ["ns", "us", "\u00b5s", "ms", "s", "m", "h"]
_SECONDS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@_FAST
@given(st.lists(_TEMPLATE_PIECES, max_size=60).map("".join) | st.text(max_size=300))
def test_template_check_answers_for_any_text(text: str) -> None:
    problem = go_template_problem(text)
    assert problem is None or problem.startswith("template: :") or "characters" in problem


@_FAST
@given(st.text(max_size=40))
def test_duration_parse_is_seconds_or_gos_error(text: str) -> None:
    try:
        seconds = go_duration_s(text)
    except ValueError as exc:
        assert str(exc).startswith("time: ")
    else:
        assert seconds == seconds  # a number, never NaN


@_FAST
@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(_UNITS)), min_size=1, max_size=4), st.booleans())
def test_durations_with_units_add_up_and_bare_numbers_need_one(parts: list[tuple[int, str]], negative: bool) -> None:
    text = ("-" if negative else "") + "".join(f"{n}{unit}" for n, unit in parts)
    expected = sum(n * _SECONDS[unit] for n, unit in parts) * (-1 if negative else 1)

    assert abs(go_duration_s(text) - expected) <= 1e-9 * max(1.0, abs(expected))
    bare = str(parts[0][0] + 1)
    try:
        go_duration_s(bare)
    except ValueError as exc:
        assert str(exc) == f'time: missing unit in duration "{bare}"'
    else:
        raise AssertionError(f"{bare!r} has no unit but was accepted")


@_FAST
@given(st.integers(1, 2**50))
def test_go_printed_floats_are_read_as_whole_numbers(n: int) -> None:
    printed = f"{float(n):.{len(str(n)) - 1}e}"  # Go's %#v of a whole float64: 1048576 -> 1.048576e+06

    assert parse_parameters(f"num_ctx                        {printed}") == {"num_ctx": str(n)}


@_FAST
@given(st.text(max_size=500))
def test_parameters_parse_any_text(text: str) -> None:
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in parse_parameters(text).items())


def test_inputs_past_the_caps_are_refused_quickly() -> None:
    started = time.process_time()  # CPU, not wall time: steady on a loaded machine

    assert "characters" in (go_template_problem("{{ " * MAX_TEMPLATE_CHARS) or "")
    try:
        go_duration_s("1s" * MAX_DURATION_CHARS)
    except ValueError as exc:
        assert str(exc).startswith("time: invalid duration")
    else:
        raise AssertionError("an over-long duration was accepted")
    assert len(parse_parameters("k 1\n" * 100_000)) == 1
    assert time.process_time() - started < 2.0
