"""Prompts in Chinese, Japanese, Korean, Russian, German, French, Spanish, Portuguese and Italian,
for every category alike.

Why a separate bank: when a language shows up mostly in one category, a linear model learns
"German means chat". Each language (one module each, `intl_zh.py` ...) gets code, reason, chat
and fast templates in about equal numbers, so the language's own words carry no label and the
asks do. Slots: {tool} a technology name, {lang} a programming language, {cmd} a command,
{code} a snippet, {err} an error, {a} {b} {c} numbers, and per-language word lists.
"""

from __future__ import annotations

import random
from types import ModuleType

from training.router import intl_de, intl_es, intl_fr, intl_it, intl_ja, intl_ko, intl_pt, intl_ru, intl_zh
from training.router.common import pick, weighted

__all__ = ["LANGUAGES", "intl_prompt"]

_TOOLS = [
    "nginx",
    "Docker",
    "Python",
    "SQL",
    "Bash",
    "Kubernetes",
    "systemd",
    "Git",
    "JavaScript",
    "Go",
    "Rust",
    "PostgreSQL",
    "Ansible",
    "PowerShell",
    "Java",
    "C++",
    "TypeScript",
    "Home Assistant",
    "Traefik",
    "cron",
    "regex",
    "pandas",
]

# Each language's templates and slot words live in its own module; the weight is its share of
# the multilingual asks (Chinese most: the cluster's author writes it, often mixed with English).
_LANGUAGES: dict[str, tuple[float, ModuleType]] = {
    "zh": (2.5, intl_zh),
    "ja": (1.5, intl_ja),
    "ko": (2.0, intl_ko),
    "ru": (1.5, intl_ru),
    "de": (1.0, intl_de),
    "fr": (1.0, intl_fr),
    "es": (1.0, intl_es),
    "pt": (1.0, intl_pt),
    "it": (0.5, intl_it),
}
_CODE = [
    "for i in range(10)\n    print(i)",
    "SELECT * FROM users WHERE id = ' + id",
    "const x = await fetch(url).json()",
    "#!/bin/bash\nfor f in *.log; do rm $f; done",
    "docker run -p 80:80 -v data:/data nginx",
    "def avg(xs):\n    return sum(xs) / len(xs)",
    "items.forEach(async (i) => {\n  await save(i)\n})\nconsole.log('done')",
    "func main() {\n    ch := make(chan int)\n    ch <- 1\n}",
    "services:\n  db:\n    image: postgres:16\n    ports:\n      - 5432:5432",
    "while True:\n    data = sock.recv(1024)\n    buf += data",
    "UPDATE orders SET status = 'done' WHERE created_at < now() - interval '30 days';",
]
_PROGRAMMING = ["Python", "Go", "Java", "JavaScript", "TypeScript", "Rust", "C++", "C#", "PHP", "Kotlin"]
_COMMANDS = [
    "npm install",
    "pip install -r requirements.txt",
    "docker build .",
    "make",
    "cargo build",
    "kubectl apply -f deploy.yaml",
    "git push origin main",
    "systemctl restart nginx",
]
_ERRORS = [
    "permission denied",
    "port is already allocated",
    "ModuleNotFoundError",
    "connection refused",
    "syntax error near unexpected token",
    "segmentation fault",
    "OOMKilled",
    "401 Unauthorized",
    "NullPointerException",
]

LANGUAGES = tuple(_LANGUAGES)
_DRAW = [(weight, code) for code, (weight, _) in _LANGUAGES.items()]


def intl_prompt(rng: random.Random, label: str, language: str | None = None) -> str:
    """A prompt of `label` in one of the languages (drawn by weight when not given)."""
    module = _LANGUAGES[language or weighted(rng, _DRAW)][1]
    template: str = pick(rng, module.BANK[label])
    slots: dict[str, list[str]] = module.SLOTS
    values = {key: pick(rng, words) for key, words in slots.items()}
    values |= {
        "tool": pick(rng, _TOOLS),
        "a": str(rng.randint(2, 9)),
        "b": str(rng.randint(10, 52)),
        "c": str(rng.randint(2, 9)),
        "code": pick(rng, _CODE),
        "err": pick(rng, _ERRORS),
        "lang": pick(rng, _PROGRAMMING),
        "cmd": pick(rng, _COMMANDS),
    }
    return template.format_map(_Missing(values))


class _Missing(dict):  # type: ignore[type-arg]
    """format_map helper: a slot a language does not define gets a neutral word."""

    def __missing__(self, key: str) -> str:
        return {
            "word": "RADAR",
            "x": "A",
            "y": "B",
            "abbr": "UNESCO",
            "animal": "whale",
            "occasion": "party",
            "how": "internet",
            "msg": "ok",
            "unit1": "m",
            "unit2": "km",
            "event": "1989",
            "work": "Hamlet",
        }.get(key, key)
