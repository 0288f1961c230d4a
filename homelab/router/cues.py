"""Hand-made cues: the shapes of code, math and small talk, whatever the language.

N-grams learn words; these say what words cannot: that a message holds a fenced block or a
stack trace, that its lines end in `;` or `{`, that it is an equation rather than a sentence,
how long it is. Each cue is a key such as `#fence` or `#len>=9`; the model weighs them like
any other key. Lengths are cumulative thresholds (`#len>=3`, `#len>=6`, ...) so a linear model
can learn "the longer, the less likely a one-line ask" without one weight per exact length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from homelab.router.request import Conversation

__all__ = ["LENGTH_STEPS", "SCAN_SPAN", "cue_keys", "length_units", "scan_window"]

# Characters of the last message that cues and n-grams read: head and tail (see scan_window).
SCAN_SPAN = (600, 200)

LENGTH_STEPS = (2, 3, 4, 6, 9, 13, 20, 30, 45, 70, 120, 250)
_LINE_STEPS = (2, 4, 8, 16)
_DIGIT_STEPS = (1, 3, 6, 12)

_DIGIT = re.compile(r"\d")
_LATIN_WORD = re.compile(r"[^\W\d_]+|\d+", re.ASCII)
# CJK ideographs, kana and hangul: no spaces between words, so length counts characters.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


@dataclass(frozen=True, slots=True)
class _Cue:
    """A regex, run only when one of `needs` occurs in the text (a substring scan in C is far
    cheaper than a regex with alternatives tried at every position)."""

    name: str
    pattern: re.Pattern[str]
    needs: tuple[str, ...] = ()
    count: bool = False  # also emit NAME>=3 when it matches three times or more


_DIGITS = tuple("0123456789")
_CUES = (
    _Cue("#fence", re.compile(r"```|~~~"), ("```", "~~~")),
    _Cue("#inline-code", re.compile(r"`[^`\n]{1,80}`"), ("`",)),
    _Cue(
        "#error-name",
        re.compile(r"\b[A-Z][a-zA-Z]+(?:Error|Exception)\b|\bE[A-Z]{3,}\b|\b0x[0-9a-fA-F]{4,}\b"),
        ("Error", "Exception", "0x", "E"),
    ),
    _Cue(
        "#code-line",
        re.compile(
            r"[;{}]\s*$|^\s*(?:def|class|fn|func|function|import|from|#include|public|let|const|var|"
            r"return|if|for|while|SELECT|FROM|WHERE|server|location)\b.*[:({=;]\s*$",
            re.MULTILINE,
        ),
        (";", "{", "}", ":", "(", "="),
        count=True,
    ),
    _Cue("#indented", re.compile(r"^(?: {2,}|\t)\S", re.MULTILINE), ("\n ", "\n\t"), count=True),
    _Cue("#call", re.compile(r"\b[A-Za-z_][\w.]*\([^()\n]{0,60}\)"), ("(",), count=True),
    _Cue("#snake", re.compile(r"\b[a-z]+_[a-z_]+\b"), ("_",), count=True),
    _Cue("#camel", re.compile(r"\b[a-z]+[A-Z][a-zA-Z]+\b"), tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")),
    _Cue("#path", re.compile(r"(?:^|[\s'\"(=])(?:~|\.{1,2})?/[\w.-]+/[\w./-]*|[A-Za-z]:\\\w"), ("/", "\\")),
    _Cue(
        "#file-ext",
        re.compile(
            r"\b[\w-]+\.(?:py|js|ts|tsx|go|rs|c|h|cpp|java|rb|php|sh|sql|ya?ml|json|toml|ini|conf|"
            r"cfg|env|md|html|css|xml|csv|txt|log|service|timer|lock|dockerfile)\b",
            re.IGNORECASE,
        ),
        (".",),
    ),
    _Cue("#cli-flag", re.compile(r"(?:^|\s)--?[a-zA-Z][\w-]*"), ("-",), count=True),
    _Cue(
        "#shell",
        re.compile(
            r"^\s*(?:\$|#)\s+\w|\b(?:sudo|apt|pip|npm|git|docker|kubectl|systemctl|chmod|chown|grep|sed|"
            r"awk|curl|ssh|rsync|crontab|jq|cd|ls|cat)\s+[-\w./~$]",
            re.MULTILINE,
        ),
    ),
    _Cue(
        "#code-op",
        re.compile(r"==|!=|=>|->|::|&&|\|\||\+=|:=|</?\w+[^>]*>|\$\{|\w\[\w*\]"),
        ("=", "->", "::", "&&", "||", "<", "${", "["),
    ),
    _Cue("#yaml", re.compile(r"^\s*[\w.-]+:\s+\S.*$\n^\s*[\w.-]+:", re.MULTILINE), (":\n", ": ")),
    _Cue(
        "#sql",
        re.compile(r"\b(?:SELECT|INSERT|UPDATE|DELETE|CREATE TABLE|JOIN|GROUP BY|ORDER BY)\b"),
        ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "JOIN", " BY"),
    ),
    _Cue(
        "#arith",
        re.compile(r"\d\s*[-+*/×÷^xX]\s*\d|\d\s*%|%\s*(?:of|de|von)\b"),
        ("%", "+", "-", "*", "/", "×", "÷", "^", "x", "X"),
    ),
    _Cue(
        "#equation",
        re.compile(r"(?<![\w.])[a-zA-Z]\s*(?:[=<>≤≥]|\^|²|³)|\d\s*[a-z]\b(?!\w)|[=<>≤≥]\s*-?\d"),
        ("=", "<", ">", "≤", "≥", "^", "²", "³", *_DIGITS),
    ),
    _Cue(
        "#math-sym",
        re.compile(r"[∫∑Σ√π∞≤≥≠±²³∂θλΔ∈∀∃⊂∩∪→⇒≡ⁿ]|\\frac|\\int|\\sum|\bmod\b"),
        (*"∫∑Σ√π∞≤≥≠±²³∂θλΔ∈∀∃⊂∩∪→⇒≡ⁿ", "\\", "mod"),
    ),
    _Cue("#power", re.compile(r"\d\s*\^\s*\d|\d\*\*\d|\d+[²³]"), ("^", "**", "²", "³")),
    _Cue("#fraction", re.compile(r"\b\d+/\d+\b"), ("/",)),
    _Cue(
        "#money",
        re.compile(r"[$€£¥]\s?\d|\d\s?[$€£¥]|\d\s?(?:dollars|euros?|USD|EUR)\b"),
        ("$", "€", "£", "¥", "dollar", "euro", "USD", "EUR"),
    ),
    _Cue("#quoted", re.compile(r"['\"“‘«„][^'\"”’»]{1,30}['\"”’»]"), ("'", '"', "“", "‘", "«", "„")),
    _Cue("#list", re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S", re.MULTILINE), ("- ", "* ", "• ", ". ", ") "), count=True),
    _Cue("#paste", re.compile(r":\s*\n\s*\n|:\n\S"), (":\n", ": \n")),
)
# Stack traces and compiler errors, matched on the lower-cased text as plain substrings.
_TRACE_MARKS = (
    "traceback (most recent",
    "panicked at",
    "exception in thread",
    "segmentation fault",
    "error:",
    "error[",
    "exception:",
    "errno",
    "exit code",
    "exit status",
    "status=",
    'file "',
    "\tat ",
    "    at ",
    "npm err!",
    "fatal:",
)


def length_units(text: str) -> int:
    """Words, counting CJK characters (which have no spaces) two to a word."""
    if _CJK.search(text) is None:
        return len(text.split())
    cjk = len(_CJK.findall(text))
    return len(_LATIN_WORD.findall(text)) + (cjk + 1) // 2


def scan_window(text: str) -> str:
    """The part of a text that cues and n-grams read: its head and its tail.

    The ask is at the start of a message, or at its end after a paste; the middle of a long
    paste adds cost, not information.
    """
    head, tail = SCAN_SPAN
    return text if len(text) <= head + tail else text[:head] + "\n" + text[-tail:]


def _steps(name: str, value: int, steps: tuple[int, ...]) -> list[str]:
    return [f"{name}>={s}" for s in steps if value >= s]


def cue_keys(conv: Conversation) -> list[str]:
    """The cue keys of a conversation's last user message, plus a few about the conversation."""
    full = conv.last_user
    text = scan_window(full)
    keys: list[str] = []
    for cue in _CUES:
        if cue.needs and not any(n in text for n in cue.needs):
            continue
        if cue.count:
            found = len(cue.pattern.findall(text))
            if found:
                keys.append(cue.name)
                if found >= 3:
                    keys.append(cue.name + ">=3")
        elif cue.pattern.search(text):
            keys.append(cue.name)
    low = text.lower()
    if any(mark in low for mark in _TRACE_MARKS):
        keys.append("#traceback")
    units = length_units(full)
    keys += _steps("#len", units, LENGTH_STEPS)
    keys += _steps("#lines", full.count("\n") + 1, _LINE_STEPS)
    keys += _steps("#digits", len(_DIGIT.findall(text, 0, 400)), _DIGIT_STEPS)
    stripped = full.rstrip()
    if stripped.endswith(("?", "？", "¿")):
        keys.append("#ends-q")
    if full.count("?") + full.count("？") >= 2:
        keys.append("#many-q")
    if not stripped:
        keys.append("#empty")
    if _CJK.search(text):
        keys.append("#cjk")
    if conv.context:
        keys.append("#followup")
        keys += _steps("#turns", len(conv.context) + 1, (3, 5))
        if units < 5:
            keys.append("#followup-short")
        if any("```" in turn for turn in conv.context):
            keys.append("#context-fence")
        elif any("`" in turn for turn in conv.context):
            keys.append("#context-inline-code")
    if conv.system:
        keys.append("#system")
    return keys
