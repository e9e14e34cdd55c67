"""YAML text to plain data, keeping the node tree so every field can be traced to its line.

Why not `yaml.safe_load`: it forgets where values came from, and an error must name the
line of the offending field.  We compose with libyaml (`CSafeLoader` when available) and
build the plain values ourselves with safe-load semantics (null, bool, int, float, str,
lists, mappings, aliases and `<<` merges) plus a few refusals that safe_load lacks:
duplicate keys, non-string keys, explicit tags (`!!python/...`, `!!binary`, `!!set`...),
alias bombs and absurd nesting.  YAML 1.1 timestamps stay strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.loading.diagnostics import Diagnostic, described, dotted

try:
    _Loader: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

MAX_DEPTH = 32
MAX_NODES_PER_DOCUMENT = 20_000
MAX_LINE_CHARS = 10_000
MAX_FLOW_DEPTH = 1000
MAX_NUMBER_CHARS = 1000  # far beyond any bound we check; int() refuses > 4300 digits

_T = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = _T + "str", _T + "int", _T + "float", _T + "bool", _T + "null"
TIMESTAMP, MAP, SEQ, MERGE = _T + "timestamp", _T + "map", _T + "seq", _T + "merge"

_constructor = yaml.constructor.SafeConstructor()


@dataclass
class Document:
    """One YAML document: its plain data plus the node tree for line lookups."""

    file: str
    line: int  # 1-based line where the document's content starts
    data: Any
    node: yaml.Node = field(repr=False)

    def line_of(self, path: tuple[str | int, ...]) -> int:
        """Line of the deepest node on `path` that exists (the key's line for mappings)."""
        node: yaml.Node = self.node
        line = self.line
        for part in path:
            found = _child(node, part)
            if found is None:
                break
            line, node = found
        return line


def _child(node: yaml.Node, part: str | int) -> tuple[int, yaml.Node] | None:
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        if 0 <= part < len(node.value):
            child = node.value[part]
            return child.start_mark.line + 1, child
        return None
    if isinstance(node, yaml.MappingNode):
        merged: list[yaml.Node] = []
        for key, value in node.value:
            if key.tag == MERGE:
                merged.extend(value.value if isinstance(value, yaml.SequenceNode) else [value])
            elif isinstance(key, yaml.ScalarNode) and key.value == part:
                return key.start_mark.line + 1, value
        for source in merged:
            found = _child(source, part)
            if found is not None:
                return found
    return None


class _Builder:
    """Turns one composed document into plain data, collecting diagnostics."""

    def __init__(self, file: str, root: yaml.Node) -> None:
        self.file = file
        self.root = root
        self.diagnostics: list[Diagnostic] = []
        self.nodes = 0

    def problem(self, node: yaml.Node, path: tuple[str | int, ...], message: str) -> None:
        self.diagnostics.append(
            Diagnostic(self.file, node.start_mark.line + 1, dotted(path), message)
        )

    def build(self, node: yaml.Node, path: tuple[str | int, ...], depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES_PER_DOCUMENT:
            if self.nodes == MAX_NODES_PER_DOCUMENT + 1:
                self.problem(
                    self.root,
                    (),
                    f"document is too large (more than {MAX_NODES_PER_DOCUMENT} values, "
                    "aliases included)",
                )
            return None
        if depth > MAX_DEPTH:
            self.problem(node, (), f"nested more than {MAX_DEPTH} levels deep")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != SEQ:
                self.problem(node, path, f"unsupported YAML tag {_tag_name(node.tag)}")
                return None
            return [self.build(child, (*path, i), depth + 1) for i, child in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, depth)
        self.problem(node, path, "unsupported YAML node")  # pragma: no cover
        return None

    def scalar(self, node: yaml.ScalarNode, path: tuple[str | int, ...]) -> Any:
        tag, value = node.tag, node.value
        if tag in (STR, TIMESTAMP):
            return value
        if tag == INT:
            if len(value) > MAX_NUMBER_CHARS:
                self.problem(node, path, f"number is too long ({len(value)} characters)")
                return None
            if value.isdigit():
                return int(value)
            return _constructor.construct_yaml_int(node)
        if tag == FLOAT:
            return _constructor.construct_yaml_float(node)
        if tag == BOOL:
            return _constructor.construct_yaml_bool(node)
        if tag == NULL:
            return None
        self.problem(
            node, path, f"unsupported YAML tag {_tag_name(tag)}; only plain values are allowed"
        )
        return None

    def mapping(self, node: yaml.MappingNode, path: tuple[str | int, ...], depth: int) -> Any:
        if node.tag != MAP:
            self.problem(node, path, f"unsupported YAML tag {_tag_name(node.tag)}")
            return None
        out: dict[str, Any] = {}
        lines: dict[str, int] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
                merged.update(self.merge(value_node, path, depth))
                continue
            key = self.build(key_node, path, depth + 1) if key_node.tag != STR else key_node.value
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                self.problem(
                    key_node,
                    path,
                    f"mapping key must be a string (got {described(key)}); quote it",
                )
                continue
            if key in lines:
                self.problem(
                    key_node, (*path, key), f"duplicate key (first given on line {lines[key]})"
                )
                continue
            lines[key] = line
            out[key] = self.build(value_node, (*path, key), depth + 1)
        if merged:
            return {**merged, **out}
        return out

    def merge(self, node: yaml.Node, path: tuple[str | int, ...], depth: int) -> dict[str, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        result: dict[str, Any] = {}
        for source in reversed(sources):
            value = self.build(source, path, depth + 1)
            if not isinstance(value, dict):
                self.problem(node, path, "a '<<' merge needs a mapping or a list of mappings")
                return {}
            result.update(value)
        return result


def parse(file: str, text: str) -> tuple[list[Document], list[Diagnostic]]:
    """All non-empty documents of `text`, or the diagnostics explaining why not."""
    documents: list[Document] = []
    diagnostics: list[Diagnostic] = []
    refusal = _refuse_before_parsing(file, text)
    if refusal is not None:
        return [], [refusal]
    try:
        for node in _compose_all(text):
            if node is None:
                continue
            builder = _Builder(file, node)
            data = builder.build(node, (), 0)
            if builder.diagnostics:
                diagnostics.extend(builder.diagnostics)
                continue
            if data is None:  # an explicit `~` or `null` document counts as empty
                continue
            documents.append(Document(file, node.start_mark.line + 1, data, node))
    except yaml.MarkedYAMLError as exc:
        diagnostics.append(_yaml_error(file, exc, text))
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        char = (
            exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        )
        diagnostics.append(
            Diagnostic(
                file, line, "", f"invalid YAML: control character U+{char:04X} is not allowed"
            )
        )
    except yaml.YAMLError as exc:  # pragma: no cover - other libyaml failures
        diagnostics.append(Diagnostic(file, 0, "", f"invalid YAML: {exc}"))
    except RecursionError:
        diagnostics.append(Diagnostic(file, 0, "", "invalid YAML: nested too deeply"))
    return documents, diagnostics


_BRACKET = re.compile(r"[\[\]{}]")


def _refuse_before_parsing(file: str, text: str) -> Diagnostic | None:
    """Refuse input that could nest deep enough to overflow libyaml's C stack.

    libyaml composes recursively in C: some 50k levels of nesting crash the process
    instead of raising.  Block nesting costs at least one character per level on a line
    and flow nesting one bracket per level, so bounding line length and bracket depth
    bounds the depth far below that, before libyaml sees the text.
    """
    if len(text) > MAX_LINE_CHARS:
        for number, content in enumerate(text.split("\n"), start=1):
            if len(content) > MAX_LINE_CHARS:
                return Diagnostic(
                    file, number, "", f"line is longer than {MAX_LINE_CHARS} characters"
                )
    if text.count("[") + text.count("{") > MAX_FLOW_DEPTH:
        depth = 0
        for match in _BRACKET.finditer(text):
            depth += 1 if match.group() in "[{" else -1
            if depth > MAX_FLOW_DEPTH:
                number = text.count("\n", 0, match.start()) + 1
                return Diagnostic(
                    file, number, "", f"brackets nested more than {MAX_FLOW_DEPTH} levels deep"
                )
    return None


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix(_T) if tag.startswith(_T) else tag


def _compose_all(text: str) -> Iterator[yaml.Node | None]:
    loader = _Loader(text)
    try:
        while loader.check_node():
            yield loader.get_node()
    finally:
        loader.dispose()


def _yaml_error(file: str, exc: yaml.MarkedYAMLError, text: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 0
    problem = exc.problem or "malformed document"
    culprit = _char_at(text, mark) if mark is not None else ""
    if "cannot start any token" in problem and culprit == "\t":
        problem = "tab characters are not allowed for indentation; use spaces"
    elif "cannot start any token" in problem and culprit:
        problem = f"character {culprit!r} cannot start a value here; quote the value"
    elif exc.context and exc.context not in problem:
        started = exc.context_mark
        where = f" that started on line {started.line + 1}" if started is not None else ""
        problem = f"{problem} ({exc.context}{where})"
    return Diagnostic(file, line, "", f"invalid YAML: {problem}")


def _char_at(text: str, mark: yaml.Mark) -> str:
    lines = text.split("\n", mark.line + 1)
    if mark.line < len(lines) and 0 <= mark.column < len(lines[mark.line]):
        return lines[mark.line][mark.column]
    return ""
