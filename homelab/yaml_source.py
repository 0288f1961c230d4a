"""YAML loading that remembers where each value came from, within fixed limits.

PyYAML's composed node tree keeps a line for every key and value; we keep those in a map
from field path (`("nodes", 1, "endpoints", 0, "url")`) to line, so that a validation
error deep in the model can name the line the user has to fix. Duplicate keys, which
PyYAML silently lets the last one win, are reported instead.

A YAML file is input from outside, so its size and shape are bounded before anything walks
it: at most `MAX_FILE_BYTES`, `MAX_DEPTH` levels of nesting, `MAX_ALIASES` alias uses and
`MAX_NODES` values once every alias is expanded. An alias shares its anchor's node, so a
500-byte "billion laughs" file composes into a small graph that only explodes when walked;
values are counted as they are composed, an alias counting its anchor's expanded size, and the
file is refused as soon as the count passes the limit, before anything walks the expanded tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from homelab.errors import FileAccessError, InventoryError, Problem
from homelab.files import read_regular

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "FieldPath",
    "SourceMap",
    "format_path",
    "load_yaml",
    "loads_yaml",
]

FieldPath = tuple[str | int, ...]

# A large cluster file is tens of kilobytes and a few thousand values (the 500-endpoint sweep
# benchmark's is 4,000); these are far above that, and low enough that `validate` answers in
# about a second whatever it is given: PyYAML's pure-Python parser took 9 s for 10 MiB of
# comments and 6 s for 100,000 values on the 2-core dev box (Dec 2026, load ~4).
MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 1_000
MAX_NODES = 20_000


@dataclass
class SourceMap:
    """Lines (1-based) of the values in one YAML document, by field path."""

    file: str
    lines: dict[FieldPath, int] = field(default_factory=dict)

    def line_of(self, path: FieldPath) -> int | None:
        """The line of `path`, or of its nearest ancestor present in the file."""
        for cut in range(len(path), -1, -1):
            if (line := self.lines.get(tuple(path[:cut]))) is not None:
                return line
        return None

    def problem(self, path: FieldPath, message: str) -> Problem:
        return Problem(self.file, self.line_of(path), format_path(path), message)


def format_path(path: FieldPath) -> str:
    """`("nodes", 1, "endpoints", 0, "url")` -> `nodes[1].endpoints[0].url`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml(path: Path) -> tuple[Any, SourceMap]:
    """Parse one YAML file into plain data and its source map.

    Raises:
        InventoryError: the file is missing, unreadable, not a regular file, larger than
            `MAX_FILE_BYTES`, not UTF-8, not YAML, over a limit, or has duplicate keys.
    """
    name = str(path)
    try:
        raw = read_regular(path, limit_bytes=MAX_FILE_BYTES, what="YAML file")
    except FileAccessError as exc:
        raise InventoryError([Problem(name, None, "", exc.message)]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InventoryError([Problem(name, line, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from exc
    return loads_yaml(text, name)


class _Refused(yaml.YAMLError):
    """The document is well-formed but over one of this module's limits, or holds a value
    PyYAML cannot build (a date like 2026-13-45, an integer of 5,000 digits)."""

    def __init__(self, mark: yaml.Mark | None, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class _NodeEvent(Protocol):
    """What SafeLoader's pure-Python parser gives for a node: every event it makes has a mark
    (types-PyYAML allows None and libyaml's marks too, which this loader never sees)."""

    anchor: str | None
    start_mark: yaml.Mark


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts depth, alias uses and expanded size while it composes."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._aliases = 0
        self._values = 0  # composed so far, aliases expanded
        self._expanded: dict[int, tuple[int, int]] = {}  # id(node) -> (values, levels) with aliases expanded
        # id(key node) -> line of the first key of that name in the same mapping. Found here,
        # before `<<` merge keys copy other mappings' keys in beside the ones written.
        self.duplicate_keys: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self._peek()
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Refused(event.start_mark, f"more than {MAX_ALIASES:,} aliases (*name); refusing to expand them")
            anchored = self.anchors.get(event.anchor)
            if anchored is not None and id(anchored) not in self._expanded:
                raise _Refused(event.start_mark, f"alias *{event.anchor} is used inside its own anchor (a loop)")
            self._count(self._expanded[id(anchored)][0] if anchored is not None else 0, event.start_mark)
            alias = super().compose_node(parent, index)
            assert alias is not None  # PyYAML composes a node or raises; its stubs allow None
            return alias
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(self._peek().start_mark, f"nested more than {MAX_DEPTH} levels deep")
        self._count(1, self._peek().start_mark)
        node = super().compose_node(parent, index)
        assert node is not None
        self._depth -= 1
        self._expanded[id(node)] = self._measure(node)
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key_node, _ in node.value:
                key, line = str(key_node.value), key_node.start_mark.line + 1
                if key in first:
                    self.duplicate_keys[id(key_node)] = first[key]
                first.setdefault(key, line)
        return node

    def _peek(self) -> _NodeEvent:
        """The next event, not consumed: a node's (an alias, a scalar, a collection's start) here."""
        event: _NodeEvent = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
        return event

    def _count(self, values: int, mark: yaml.Mark) -> None:
        self._values += values
        if self._values > MAX_NODES:
            raise _Refused(mark, f"more than {MAX_NODES:,} values once aliases are expanded")

    def _measure(self, node: yaml.Node) -> tuple[int, int]:
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        sizes = [self._expanded[id(child)] for child in children]
        values = 1 + sum(size for size, _ in sizes)
        levels = 1 + max((depth for _, depth in sizes), default=0)
        if levels > MAX_DEPTH:
            raise _Refused(node.start_mark, f"nested more than {MAX_DEPTH} levels deep once aliases are expanded")
        return values, levels

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:  # raised by the scalar constructors
            raise _Refused(node.start_mark, f"cannot read this value: {exc}") from exc


def loads_yaml(text: str, name: str) -> tuple[Any, SourceMap]:
    """Parse YAML text; `name` is used in error messages.

    Raises:
        InventoryError: as `load_yaml`, for everything after reading the file.
    """
    try:
        loader = _BoundedLoader(text)  # the reader checks every character here
    except yaml.reader.ReaderError as exc:
        raise InventoryError([_unprintable(exc, text, name)]) from None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        raise InventoryError([Problem(name, _line(exc.mark), "", exc.message)]) from None
    except yaml.MarkedYAMLError as exc:
        raise InventoryError([_syntax_problem(exc, name)]) from None
    except yaml.YAMLError as exc:
        raise InventoryError([Problem(name, None, "", f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()
    source = SourceMap(name)
    if node is not None:
        problems: list[Problem] = []
        _walk(node, (), source, problems, loader.duplicate_keys)
        if problems:
            raise InventoryError(problems)
    return data, source


def _line(mark: yaml.Mark | None) -> int | None:
    return mark.line + 1 if mark else None


def _unprintable(exc: yaml.reader.ReaderError, text: str, name: str) -> Problem:
    line = text.count("\n", 0, exc.position) + 1
    column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
    return Problem(name, line, "", f"control character U+{exc.character:04X} at column {column} is not allowed in YAML")


def _syntax_problem(exc: yaml.MarkedYAMLError, name: str) -> Problem:
    line = _line(exc.problem_mark or exc.context_mark)
    what = exc.problem or exc.context or "invalid YAML"
    if exc.problem and exc.context and exc.context_mark and line != exc.context_mark.line + 1:
        what += f" ({exc.context} at line {exc.context_mark.line + 1})"
    return Problem(name, line, "", f"YAML syntax error: {what}")


def _walk(
    node: yaml.Node, path: FieldPath, source: SourceMap, problems: list[Problem], duplicates: dict[int, int]
) -> None:
    """Record lines along `node`; recursion and visits are bounded by `_BoundedLoader`'s counts."""
    source.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        # The pair that ends up in the data: keys merged in by `<<` come first, so a key written
        # in the mapping itself overrides them, as PyYAML's constructor does.
        winners: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if id(key_node) in duplicates:
                message = f"duplicate key (first at line {duplicates[id(key_node)]})"
                problems.append(Problem(source.file, key_node.start_mark.line + 1, format_path((*path, key)), message))
            else:
                winners[key] = (key_node, value_node)
        for key, (key_node, value_node) in winners.items():
            source.lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), source, problems, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), source, problems, duplicates)
