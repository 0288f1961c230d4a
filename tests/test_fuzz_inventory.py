"""Fuzzing the cluster-file loader: whatever the text, it returns an Inventory or raises InventoryError.

Four sources of text: arbitrary strings, the examples and good cases with YAML's special
characters inserted, deleted or swapped, good files with one value replaced by an odd one
(`.inf`, 2^70, a list, a 300-character string), and anchor/alias graphs of random shape (the
alias-bomb family). Each load is timed and the process's peak resident size watched, so an input
that makes the loader hang or balloon fails here rather than in a user's sweep. Bounded: a few
seconds in all.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy.engine
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homelab.errors import InventoryError
from homelab.inventory import Inventory, parse_inventory, values
from homelab.inventory.values import check_command, check_database_url, check_docker_url, check_host, check_http_url
from homelab.yaml_source import loads_yaml
from tests.inventory_cases import EXAMPLES, GOOD

FUZZ = settings(
    max_examples=120,
    deadline=None,  # timed below with a bound that tolerates a loaded 2-core machine
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow],
)
MAX_SECONDS = 2.0
MAX_PEAK_GROWTH_KIB = 128 * 1024  # ru_maxrss is in KiB on Linux
SEEDS = [path.read_text(encoding="utf-8") for path in EXAMPLES + GOOD]
YAML_CHARACTERS = [*"[]{}:,-?&*!|>'\"#%@`~\n\t .0123456789eE+", "\x00", "\x1b", "\x85", "\u2028", "\ufeff"]


def load(text: str) -> Inventory | None:
    """Load `text` as a cluster file within the time and memory bounds; None when refused."""
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    try:
        data, source = loads_yaml(text, "fuzz.yaml")
        return parse_inventory(data, source)
    except InventoryError as exc:
        assert exc.problems and all(p.file == "fuzz.yaml" for p in exc.problems)
        return None
    finally:
        elapsed = time.perf_counter() - started
        growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
        assert elapsed < MAX_SECONDS, f"{elapsed:.2f} s for {len(text)} characters"
        assert growth < MAX_PEAK_GROWTH_KIB, f"peak RSS grew {growth:,} KiB for {len(text)} characters"


@FUZZ
@given(st.text(max_size=300))
def test_any_text(text: str) -> None:
    load(text)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 3))
        insert = "".join(draw(st.lists(st.sampled_from(YAML_CHARACTERS), max_size=4)))
        text = text[:at] + insert + text[at + cut :]
    return text


@FUZZ
@given(mutated())
def test_mutated_valid_files(text: str) -> None:
    load(text)


ODD_VALUES = st.one_of(
    st.floats(),  # includes inf, -inf, nan, 1e308
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=300),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _leaves(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(data, dict):
        return [path] + [leaf for key, value in data.items() for leaf in _leaves(value, (*path, key))]
    if isinstance(data, list):
        return [path] + [leaf for index, value in enumerate(data) for leaf in _leaves(value, (*path, index))]
    return [path]


@st.composite
def odd_value_in_a_good_file(draw: st.DrawFn) -> str:
    data = yaml.safe_load(draw(st.sampled_from(SEEDS)))
    path = draw(st.sampled_from([leaf for leaf in _leaves(data) if leaf]))
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = draw(ODD_VALUES)
    return yaml.safe_dump(data, sort_keys=False)


@FUZZ
@given(odd_value_in_a_good_file())
def test_one_odd_value_in_a_good_file(text: str) -> None:
    load(text)


@st.composite
def alias_graph(draw: st.DrawFn) -> str:
    """Anchors whose lists alias earlier anchors: shapes from harmless to a billion laughs."""
    lines = ["a0: &a0 [lol, lol]"]
    for i in range(1, draw(st.integers(1, 30))):
        refs = draw(st.lists(st.integers(0, i - 1), min_size=1, max_size=12))
        nested = draw(st.booleans())
        items = ", ".join(f"[*a{r}]" if nested else f"*a{r}" for r in refs)
        lines.append(f"a{i}: &a{i} [{items}]")
    if draw(st.booleans()):
        lines.append(f"nodes: *a{len(lines) - 1}")
    return "\n".join(lines) + "\n"


@settings(FUZZ, max_examples=50)  # each may expand to 100,000 values before it is refused
@given(alias_graph())
def test_alias_graphs_load_or_are_refused_quickly(text: str) -> None:
    assert len(text.encode()) < 4096  # the input is small; only its expansion could be large
    load(text)


def test_the_fuzzer_sees_valid_files_too() -> None:
    """The seeds load, so a mutation that keeps a file valid is checked through to an Inventory."""
    assert all(isinstance(load(text), Inventory) for text in SEEDS)
    assert len(SEEDS) == len(EXAMPLES) + len(GOOD) and all(Path(p).is_file() for p in EXAMPLES)


URL_PARTS = st.sampled_from(
    [
        *["http", "https", "sqlite", "postgresql", "postgresql+psycopg", "mysql", "tcp", "ssh", "unix", "xn--", "a"],
        *":/@?#[]%.-+=~ \x00\t",
        *["::1", "127.0.0.1", "65536", "0", "-1", "user", "pass", "--password", "/p:x", "'", '"'],
    ]
)
CHECKS = [check_http_url, check_docker_url, check_database_url, check_command, check_host]


@FUZZ
@given(st.sampled_from(CHECKS), st.one_of(st.text(max_size=60), st.lists(URL_PARTS, max_size=12).map("".join)))
def test_value_checks_raise_only_value_error(check: Callable[[str], str], value: str) -> None:
    """Pydantic turns a ValueError into a located message; anything else would be a traceback."""
    try:
        assert isinstance(check(value), str)
    except ValueError as exc:
        assert str(exc)


SQLITE_PARTS = st.sampled_from(
    ["a", "/", "?", "password=x", "mode=ro", "=", "&", "#", ":", "@", "%20", " ", "\x00", ".."]
)
PLAIN_SQLITE_CANDIDATES = st.one_of(
    st.from_regex(values._PLAIN_SQLITE, fullmatch=True).filter(lambda v: len(v) <= 500),
    st.tuples(st.sampled_from(["sqlite:///", "sqlite+pysqlite:///"]), st.lists(SQLITE_PARTS, max_size=12)).map(
        lambda t: t[0] + "".join(t[1])
    ),
)


@FUZZ
@given(PLAIN_SQLITE_CANDIDATES)
def test_plain_sqlite_shortcut_agrees_with_sqlalchemy(value: str) -> None:
    """`validate` accepts a plain sqlite:///PATH without importing SQLAlchemy: only URLs that
    SQLAlchemy itself reads as a password-less SQLite file database on an installed driver."""
    if not values._PLAIN_SQLITE.fullmatch(value):
        return
    assert check_database_url(value) == value
    url = sqlalchemy.engine.make_url(value)
    assert url.get_backend_name() == "sqlite"
    assert url.password is None and not url.query
    url.get_dialect().import_dbapi()
