"""An OpenAI-style request reduced to what routing looks at: the texts of the turns, and any image.

Routing never needs the whole body, and a body can be huge (a pasted 1 MB log) or odd (a
content list with part types this code has never seen). Reading it once, here, into a small
`Conversation` keeps the classifier simple and its cost bounded: each text is cut to a fixed
budget before anything else looks at it, so a 1 MB prompt costs no more to classify than a
long one.

Accepted shapes: `/v1/chat/completions` (and Ollama's `/api/chat`) with `messages`;
`/v1/completions` (and `/api/generate`) with `prompt`; any path ending in `/embeddings` or
`/embed` is an embedding request whatever its input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from homelab.errors import RequestError

__all__ = [
    "DEFAULT_TEXT_BUDGET",
    "IMAGE_PART_TYPES",
    "Conversation",
    "TextBudget",
    "is_embedding_endpoint",
    "read_request",
]

# OpenAI chat uses `image_url`; the Responses API says `input_image`; others say `image`.
IMAGE_PART_TYPES = frozenset({"image_url", "input_image", "image"})
_TEXT_PART_TYPES = frozenset({"text", "input_text"})
_SYSTEM_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True, slots=True)
class TextBudget:
    """How much of each text routing reads, in characters: the start of a text says what is
    asked, its end often holds the actual question after a paste, the middle rarely matters."""

    head_chars: int = 1500
    tail_chars: int = 300
    context_chars: int = 400
    context_turns: int = 3

    def cut(self, text: str) -> str:
        """The head and tail of `text` within the budget (the whole text when it fits)."""
        if len(text) <= self.head_chars + self.tail_chars:
            return text
        return text[: self.head_chars] + "\n" + text[-self.tail_chars :]


DEFAULT_TEXT_BUDGET = TextBudget()


@dataclass(frozen=True, slots=True)
class Conversation:
    """The parts of a request that decide its category.

    Attributes:
        endpoint: the request path, normalised (no query string, no trailing slash).
        last_user: the text of the last user message, within the budget.
        context: earlier turns (user and assistant), oldest first, each within the budget.
        system: the system prompt(s), within the budget: context, never the deciding voice.
        has_image: some user message carries an image part.
        embedding: the endpoint is an embeddings endpoint.
        truncated: some text was longer than its budget.
    """

    endpoint: str
    last_user: str = ""
    context: tuple[str, ...] = ()
    system: str = ""
    has_image: bool = False
    embedding: bool = False
    truncated: bool = False


def _normalise_endpoint(endpoint: str) -> str:
    path = endpoint.split("?", 1)[0].strip()
    return path.rstrip("/") or "/"


def is_embedding_endpoint(endpoint: str) -> bool:
    """`/v1/embeddings`, `/embeddings`, Ollama's `/api/embed` and `/api/embeddings`."""
    path = _normalise_endpoint(endpoint).lower()
    return path.endswith(("/embeddings", "/embed"))


def _content_text(content: Any, where: str) -> tuple[str, bool]:
    """The text of a message's content and whether it holds an image part.

    Unknown part types (audio, files, whatever comes next) are skipped, not refused: the
    text parts still say what the request is for.
    """
    if content is None:
        return "", False
    if isinstance(content, str):
        return content, False
    if isinstance(content, Sequence) and not isinstance(content, bytes | bytearray):
        texts: list[str] = []
        image = False
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping):
                kind = part.get("type")
                if not isinstance(kind, str):  # a list or object here is unhashable: skipped as unknown
                    continue
                if kind in IMAGE_PART_TYPES:
                    image = True
                elif kind in _TEXT_PART_TYPES and isinstance(part.get("text"), str):
                    texts.append(part["text"])
        return "\n".join(texts), image
    raise RequestError(f"{where}.content is neither a string nor a list of parts")


def _read_messages(endpoint: str, messages: Any, budget: TextBudget) -> Conversation:
    if not isinstance(messages, list):
        raise RequestError("body.messages is not a list")
    if not messages:
        raise RequestError("body.messages is empty: there is nothing to classify")
    turns: list[tuple[str, str]] = []
    system: list[str] = []
    has_image = False
    for i, message in enumerate(messages):
        where = f"body.messages[{i}]"
        if not isinstance(message, Mapping):
            raise RequestError(f"{where} is not an object")
        role = message.get("role")
        if role is not None and not isinstance(role, str):
            raise RequestError(f"{where}.role is not a string")
        text, image = _content_text(message.get("content"), where)
        # Ollama's /api/chat carries images beside the content, base64 strings in `images`.
        image = image or bool(message.get("images"))
        if role in _SYSTEM_ROLES:
            system.append(text)
            continue
        if role == "user":
            has_image = has_image or image
        turns.append((str(role), text))
    users = [i for i, (role, _) in enumerate(turns) if role == "user"]
    if not users:
        raise RequestError("body.messages has no user message: there is nothing to classify")
    last = users[-1]
    earlier = [text for _, text in turns[:last]][-budget.context_turns :]
    last_text = turns[last][1]
    truncated = len(last_text) > budget.head_chars + budget.tail_chars
    return Conversation(
        endpoint=endpoint,
        last_user=budget.cut(last_text),
        context=tuple(t[: budget.context_chars] for t in earlier),
        system=" ".join(system)[: budget.context_chars],
        has_image=has_image,
        truncated=truncated,
    )


def read_request(endpoint: str, body: Any, budget: TextBudget = DEFAULT_TEXT_BUDGET) -> Conversation:
    """Read an OpenAI-style request into a `Conversation`.

    Args:
        endpoint: the path the request was sent to, e.g. `/v1/chat/completions`.
        body: the parsed JSON body.
        budget: how much of each text to keep.

    Raises:
        RequestError: the body cannot be classified; the message says where it is wrong.
    """
    path = _normalise_endpoint(endpoint)
    if is_embedding_endpoint(path):
        return Conversation(endpoint=path, embedding=True)
    if not isinstance(body, Mapping):
        raise RequestError(f"body is {type(body).__name__}, not a JSON object")
    if "messages" in body:
        return _read_messages(path, body["messages"], budget)
    if "prompt" in body:
        prompt = body["prompt"]
        if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
            prompt = "\n".join(prompt)
        if not isinstance(prompt, str):
            raise RequestError("body.prompt is not a string")
        image = bool(body.get("images"))
        return Conversation(
            endpoint=path,
            last_user=budget.cut(prompt),
            has_image=image,
            truncated=len(prompt) > budget.head_chars + budget.tail_chars,
        )
    raise RequestError("body has neither messages nor prompt")
