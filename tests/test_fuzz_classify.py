"""Fuzzing the request classifier: any JSON body, any text, on any endpoint, gives a category or a
RequestError, never another exception, and within a bounded time however big the body.

Bodies are drawn from three shapes: arbitrary JSON; OpenAI chat bodies whose roles, contents and
content parts are arbitrary JSON (nested part lists, images, numbers where text goes); prompt
bodies. Huge texts are a short piece repeated, up to 4 million characters. Bounded: a fixed
number of examples, a per-example deadline, and a time and memory cap around each call.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from homelab.errors import RequestError
from homelab.inventory import Category
from homelab.router.classify import Classification, default_classifier
from tests.bounded import capped

ENDPOINTS = st.sampled_from(
    ["/v1/chat/completions", "/api/chat", "/v1/completions", "/api/generate", "/v1/embeddings", "/api/embed"]
) | st.text(max_size=40)
HUGE_TEXT = st.builds(lambda piece, n: piece * n, st.text(min_size=1, max_size=12), st.integers(1, 4_000_000 // 12))
TEXT = st.text(max_size=300) | HUGE_TEXT
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
PART_TYPES = st.sampled_from(["text", "input_text", "image_url", "input_image", "image", "input_audio", "file"])
PART = st.fixed_dictionaries(
    {"type": PART_TYPES | JSON},
    optional={"text": TEXT | JSON, "image_url": st.just({"url": "data:image/png;base64,AAAA"}) | JSON},
)
CONTENT = TEXT | st.lists(PART | TEXT | JSON, max_size=6) | JSON
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]) | JSON},
    optional={"content": CONTENT, "images": st.lists(st.text(max_size=8), max_size=2) | JSON},
)
BODIES = (
    JSON
    | st.fixed_dictionaries({"messages": st.lists(MESSAGE, max_size=8) | JSON}, optional={"model": JSON})
    | st.fixed_dictionaries({"prompt": TEXT | st.lists(TEXT, max_size=4) | JSON}, optional={"images": JSON})
)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(endpoint=ENDPOINTS, body=BODIES)
def test_classifier_returns_a_category_or_a_request_error(endpoint: str, body: Any) -> None:
    classifier = default_classifier()
    try:
        with capped(seconds=2, extra_bytes=512 * 1024**2):
            result = classifier.classify(endpoint, body)
    except RequestError as exc:
        assert str(exc)
        event("RequestError")
        return
    event(f"category {result.category}{', truncated' if result.truncated else ''}")
    assert isinstance(result, Classification)
    assert result.category in set(Category)
    assert 0.0 <= result.confidence <= 1.0
