"""YAML loading that remembers where each value came from.

PyYAML's composed node tree keeps a line for every key and value; we keep those in a map
from field path (`("nodes", 1, "endpoints", 0, "url")`) to line, so that a validation
error deep in the model can name the line the user has to fix. Duplicate keys, which
PyYAML silently lets the last one win, are reported instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from homelab.errors import InventoryError, Problem

__all__ = ["FieldPath", "SourceMap", "load_yaml", "format_path"]

FieldPath = tuple[str | int, ...]


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
        InventoryError: the file is missing, unreadable, not UTF-8, not YAML, or has
            duplicate keys.
    """
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError([Problem(name, None, "", "file not found")]) from None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise InventoryError([Problem(name, line, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from exc
    except OSError as exc:
        raise InventoryError([Problem(name, None, "", f"cannot read: {exc.strerror}")]) from exc
    return loads_yaml(text, name)


def loads_yaml(text: str, name: str) -> tuple[Any, SourceMap]:
    """Parse YAML text; `name` is used in error messages."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context and exc.context_mark and line != exc.context_mark.line + 1:
            what += f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise InventoryError([Problem(name, line, "", f"YAML syntax error: {what}")]) from exc
    except yaml.YAMLError as exc:
        raise InventoryError([Problem(name, None, "", f"YAML error: {exc}")]) from exc
    finally:
        loader.dispose()
    source = SourceMap(name)
    if node is not None:
        problems: list[Problem] = []
        _walk(node, (), source, problems)
        if problems:
            raise InventoryError(problems)
    return data, source


def _walk(node: yaml.Node, path: FieldPath, source: SourceMap, problems: list[Problem]) -> None:
    source.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(
                    Problem(source.file, line, format_path((*path, key)), f"duplicate key (first at line {seen[key]})")
                )
                continue
            seen[key] = line
            source.lines[(*path, key)] = line
            _walk(value_node, (*path, key), source, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), source, problems)
