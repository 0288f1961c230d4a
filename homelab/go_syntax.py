"""The Go syntaxes Ollama applies to what it is sent: text/template for templates, time.ParseDuration for keep_alive.

Durations: Ollama reads a `keep_alive` string with Go's `time.ParseDuration` (ollama/ollama
api/types.go `Duration.UnmarshalJSON`, line 1259 at v0.33.0-rc2, line 1040 at v0.12.11), so
every number needs a unit: `"300"` is a 400 `time: missing unit in duration "300"`.
`go_duration_s` follows Go's grammar and messages (src/time/format.go `ParseDuration`).

Templates:
Ollama parses every template it is given with Go's text/template and its own functions
(ollama/ollama `template/template.go` `Parse`, line 145 at v0.33.0-rc2; `funcs`, line 120), and
`/api/create` fails with `template error: ...` when that parse fails (`server/create.go`
`setTemplate`, line 1313 at v0.33.0-rc2, line 678 at v0.12.11). A Jinja template pasted from a
model card is the usual culprit: `{{ bos_token }}` names a function Go does not know, and
`{{ '<|im_start|>' + message['role'] }}` holds characters a Go action cannot.

This is not Go's parser: it checks what a prompt template can get wrong (unclosed actions,
bad characters, unknown functions, blocks without `end`), with Go's messages. The inventory
runs it before a rollout sends anything; the Ollama stand-in runs it as Ollama would.
"""

from __future__ import annotations

import json
import re

__all__ = [
    "GO_BUILTINS",
    "MAX_DURATION_CHARS",
    "MAX_TEMPLATE_CHARS",
    "OLLAMA_FUNCTIONS",
    "go_duration_s",
    "go_template_problem",
    "jinja_problem",
]

MAX_DURATION_CHARS = 64  # "1h30m" is typical; bound what is scanned
_GO_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")  # Go's `unitMap`
_GO_UNIT_S = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

MAX_TEMPLATE_CHARS = 64 * 1024  # prompt templates are a few KB; bound what is scanned

# text/template's builtins (Go's text/template/funcs.go `builtins`).
GO_BUILTINS = frozenset(
    [
        "and",
        "call",
        "html",
        "index",
        "slice",
        "js",
        "len",
        "not",
        "or",
        "print",
        "printf",
        "println",
        "urlquery",
        "eq",
        "ge",
        "gt",
        "le",
        "lt",
        "ne",
    ]
)
# Ollama's own functions in every version modelled (template/template.go `funcs`, line 120 at
# v0.12.11); v0.33 adds `yesterdayDate`, which a template for both versions cannot use.
OLLAMA_FUNCTIONS = frozenset({"json", "currentDate", "toTypeScriptType"})

_OPENS = frozenset({"if", "range", "with", "define", "block"})
_KEYWORDS = _OPENS | {"else", "end", "template", "break", "continue", "true", "false", "nil"}
_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_COMMENT = re.compile(r"\s*/\*.*?\*/\s*", re.DOTALL)
_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<punct>:=|=|\||\(|\)|,)
    |(?P<string>"(?:\\.|[^"\\\n])*")
    |(?P<raw>`[^`]*`)
    |(?P<char>'(?:\\.|[^'\\\n])')
    |(?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))
    |(?P<field>(?:\$\w*)?(?:\.\w+)+|\$\w*|\.)
    |(?P<ident>[A-Za-z_]\w*)""",
    re.VERBOSE,
)


def _line(text: str, at: int) -> int:
    return text.count("\n", 0, at) + 1


def _tokens(body: str) -> list[tuple[str, str]] | str:
    """An action's tokens (kind, text), or Go's message for the first character it cannot lex."""
    found: list[tuple[str, str]] = []
    at = 0
    while at < len(body):
        match = _TOKEN.match(body, at)
        if match is None:
            bad = body[at]
            if bad == "'":
                return "malformed character constant"
            return f"unexpected bad character U+{ord(bad):04X} {bad!r} in command"
        kind = match.lastgroup or ""
        if kind != "space":
            found.append((kind, match.group()))
        at = match.end()
    return found


def _action_problem(tokens: list[tuple[str, str]], stack: list[str], functions: frozenset[str]) -> str | None:
    """Structure and names of one action; `stack` holds the blocks still open."""
    if not tokens:
        return "missing value for command"
    kind, first = tokens[0]
    if kind == "ident" and first in _OPENS:
        stack.append(first)
    elif first == "end":
        if not stack:
            return "unexpected {{end}}"
        stack.pop()
    elif first == "else" and (not stack or stack[-1] not in {"if", "range", "with"}):
        return "unexpected {{else}}"
    elif first in {"break", "continue"} and "range" not in stack:
        return f"{{{{{first}}}}} outside {{{{range}}}}"
    for kind, text in tokens:
        if kind == "ident" and text not in _KEYWORDS and text not in functions:
            return f'function "{text}" not defined'
    return None


def go_template_problem(text: str, functions: frozenset[str] = GO_BUILTINS | OLLAMA_FUNCTIONS) -> str | None:
    """Go's parse error for `text` as Ollama would report it (`template: :LINE: ...`), or None.

    Args:
        functions: the names a template may call (Go's builtins and Ollama's `funcs`).
    """
    if len(text) > MAX_TEMPLATE_CHARS:
        return f"template is {len(text)} characters, more than {MAX_TEMPLATE_CHARS}"
    stack: list[str] = []
    at = 0
    while (start := text.find("{{", at)) >= 0:
        match = _ACTION.match(text, start)
        if match is None:
            return f"template: :{_line(text, start)}: unclosed action"
        body = match.group(2)
        if not _COMMENT.fullmatch(body):
            tokens = _tokens(body)
            problem = tokens if isinstance(tokens, str) else _action_problem(tokens, stack, functions)
            if problem is not None:
                return f"template: :{_line(text, start)}: {problem}"
        at = match.end()
    if stack:
        return f"template: :{_line(text, len(text))}: unexpected EOF (a {{{{{stack[-1]}}}}} has no {{{{end}}}})"
    return None


def jinja_problem(text: str) -> str | None:
    """A Jinja block (`{%`) or comment (`{#`): Go would pass it on to the model as text, never what was meant."""
    for marker, what in (("{%", "a Jinja block"), ("{#", "a Jinja comment")):
        if (at := text.find(marker)) >= 0:
            return f"line {_line(text, at)} of the template has {what} ({marker}): Ollama takes Go templates, not Jinja"
    return None


def go_duration_s(text: str) -> float:
    """Seconds from a Go duration string, with Go's `time.ParseDuration` errors.

    Raises:
        ValueError: `time: missing unit in duration "300"` and the like, as Ollama's 400 says.
    """
    quoted = json.dumps(text[:MAX_DURATION_CHARS])
    if len(text) > MAX_DURATION_CHARS:
        raise ValueError(f"time: invalid duration {quoted}")
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":  # Go's special case: the only number that needs no unit
        return 0.0
    if not body:
        raise ValueError(f"time: invalid duration {quoted}")
    at, seconds = 0, 0.0
    while at < len(body):
        match = _GO_PART.match(body, at)
        if match is None:
            number = re.match(r"\d+\.?\d*|\.\d+", body[at:])
            if number is None:
                raise ValueError(f"time: invalid duration {quoted}")
            unit = re.match(r"[^\d.]*", body[at + number.end() :])
            if unit is None or not unit.group():
                raise ValueError(f"time: missing unit in duration {quoted}")
            raise ValueError(f"time: unknown unit {json.dumps(unit.group())} in duration {quoted}")
        seconds += float(match.group(1)) * _GO_UNIT_S[match.group(2)]
        at = match.end()
    return -seconds if text.startswith("-") else seconds
