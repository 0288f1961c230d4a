"""Hand-made cues: the shapes of code, math and small talk, whatever the language.

N-grams learn words; these say what words cannot: that a message holds a fenced block or a
stack trace, that its lines end in `;` or `{`, that it is an equation rather than a sentence,
how long it is. Each cue is a key such as `#fence` or `#len>=9`; the model weighs them like
any other key. Lengths are cumulative thresholds (`#len>=3`, `#len>=6`, ...) so a linear model
can learn "the longer, the less likely a one-line ask" without one weight per exact length.
"""

from __future__ import annotations

import re

from homelab.router.request import Conversation

__all__ = ["length_units", "cue_keys", "LENGTH_STEPS"]

LENGTH_STEPS = (2, 3, 4, 6, 9, 13, 20, 30, 45, 70, 120, 250)
_LINE_STEPS = (2, 4, 8, 16)
_DIGIT_STEPS = (1, 3, 6, 12)

_DIGIT = re.compile(r"\d")
_LATIN_WORD = re.compile(r"[^\W\d_]+|\d+", re.ASCII)
_WORDISH = re.compile(r"[^\W_]+")
# CJK ideographs, kana and hangul: no spaces between words, so length counts characters.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")

_PATTERNS: dict[str, re.Pattern[str]] = {
    "#fence": re.compile(r"```|~~~"),
    "#inline-code": re.compile(r"`[^`\n]{1,80}`"),
    "#traceback": re.compile(
        r"Traceback \(most recent|^\s+at [\w.$]+\(|panicked at|Exception in thread|segmentation fault"
        r"|^\s*File \"[^\"]+\", line \d+|error(?:\[E\d+\])?:|Error:|Exception:|errno|exit (?:code|status) \d",
        re.MULTILINE | re.IGNORECASE,
    ),
    "#error-name": re.compile(r"\b[A-Z][a-zA-Z]+(?:Error|Exception)\b|\bE[A-Z]{3,}\b|\b0x[0-9a-fA-F]{4,}\b"),
    "#code-line": re.compile(r"[;{}]\s*$|^\s*(?:def|class|fn|func|function|import|from|#include|public|let|const|var|"
                             r"return|if|for|while|SELECT|FROM|WHERE|server|location)\b.*[:({=;]\s*$", re.MULTILINE),
    "#indented": re.compile(r"^(?: {2,}|\t)\S", re.MULTILINE),
    "#call": re.compile(r"\b[A-Za-z_][\w.]*\([^()\n]{0,60}\)"),
    "#snake": re.compile(r"\b[a-z]+_[a-z_]+\b"),
    "#camel": re.compile(r"\b[a-z]+[A-Z][a-zA-Z]+\b"),
    "#path": re.compile(r"(?:^|[\s'\"(=])(?:~|\.{1,2})?/[\w.-]+/[\w./-]*|[A-Za-z]:\\\w"),
    "#file-ext": re.compile(r"\b[\w-]+\.(?:py|js|ts|tsx|go|rs|c|h|cpp|java|rb|php|sh|sql|ya?ml|json|toml|ini|conf|"
                            r"cfg|env|md|html|css|xml|csv|txt|log|service|timer|lock|dockerfile)\b", re.IGNORECASE),
    "#cli-flag": re.compile(r"(?:^|\s)--?[a-zA-Z][\w-]*"),
    "#shell": re.compile(r"^\s*(?:\$|#)\s+\w|\b(?:sudo|apt|pip|npm|git|docker|kubectl|systemctl|chmod|chown|grep|sed|"
                         r"awk|curl|ssh|rsync|crontab|jq|cd|ls|cat)\s+[-\w./~$]", re.MULTILINE),
    "#code-op": re.compile(r"==|!=|=>|->|::|&&|\|\||\+=|:=|</?\w+[^>]*>|\$\{|\w\[\w*\]"),
    "#yaml": re.compile(r"^\s*[\w.-]+:\s+\S.*$\n^\s*[\w.-]+:", re.MULTILINE),
    "#sql": re.compile(r"\b(?:SELECT|INSERT|UPDATE|DELETE|CREATE TABLE|JOIN|GROUP BY|ORDER BY)\b"),
    "#arith": re.compile(r"\d\s*[-+*/×÷^xX]\s*\d|\d\s*%|%\s*(?:of|de|von)\b"),
    "#equation": re.compile(r"(?<![\w.])[a-zA-Z]\s*(?:[=<>≤≥]|\^|²|³)|\d\s*[a-z]\b(?!\w)|[=<>≤≥]\s*-?\d"),
    "#math-sym": re.compile(r"[∫∑Σ√π∞≤≥≠±²³∂θλΔ∈∀∃⊂∩∪→⇒≡ⁿ]|\\frac|\\int|\\sum|\bmod\b"),
    "#power": re.compile(r"\d\s*\^\s*\d|\d\*\*\d|\d+[²³]"),
    "#fraction": re.compile(r"\b\d+/\d+\b"),
    "#money": re.compile(r"[$€£¥]\s?\d|\d\s?[$€£¥]|\d\s?(?:dollars|euros?|USD|EUR)\b"),
    "#quoted": re.compile(r"['\"“‘«„][^'\"”’»]{1,30}['\"”’»]"),
    "#list": re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S", re.MULTILINE),
    "#paste": re.compile(r":\s*\n\s*\n|:\n\S"),
}
_MULTI = {"#list", "#indented", "#code-line", "#call", "#snake", "#cli-flag"}


def length_units(text: str) -> int:
    """Words, counting CJK characters (which have no spaces) two to a word."""
    cjk = len(_CJK.findall(text))
    if cjk:
        return len(_LATIN_WORD.findall(text)) + (cjk + 1) // 2
    return len(_WORDISH.findall(text))


def _steps(name: str, value: int, steps: tuple[int, ...]) -> list[str]:
    return [f"{name}>={s}" for s in steps if value >= s]


def cue_keys(conv: Conversation) -> list[str]:
    """The cue keys of a conversation's last user message, plus a few about the conversation."""
    text = conv.last_user
    keys: list[str] = []
    for name, pattern in _PATTERNS.items():
        if name in _MULTI:
            count = len(pattern.findall(text))
            if count:
                keys.append(name)
                if count >= 3:
                    keys.append(name + ">=3")
        elif pattern.search(text):
            keys.append(name)
    units = length_units(text)
    keys += _steps("#len", units, LENGTH_STEPS)
    keys += _steps("#lines", text.count("\n") + 1, _LINE_STEPS)
    keys += _steps("#digits", len(_DIGIT.findall(text, 0, 400)), _DIGIT_STEPS)
    stripped = text.rstrip()
    if stripped.endswith(("?", "？", "¿")):
        keys.append("#ends-q")
    if text.count("?") + text.count("？") >= 2:
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
    if conv.system:
        keys.append("#system")
    return keys
