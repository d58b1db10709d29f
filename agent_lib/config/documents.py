"""Reading spec YAML safely: limits first, then the safe loader, keeping line numbers.

A spec file is small (a ConfigMap holds at most 1 MiB), so anything larger, any
binary content, a deeply nested or alias-amplified document (a "YAML bomb") is
refused with a reason before it can cost time or memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent_lib.config.problems import Problem

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64
YAML_SUFFIXES = (".yaml", ".yml")

Location = tuple[str | int, ...]


_FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it: the pure-Python scanner needs
about 15 s for a 1 MB flow sequence, libyaml a fraction of a second."""


class YamlLimitError(ValueError):
    """The YAML input is over one of the limits of this module."""

    def __init__(self, reason: str, line: int = 0) -> None:
        super().__init__(reason)
        self.line = line


@dataclass(frozen=True)
class SourceDocument:
    """One YAML document with where it came from and the line of each field in it."""

    data: Any
    file: str = "<input>"
    line: int = 1
    lines: dict[Location, int] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, location: Location) -> int:
        """Line of the deepest part of ``location`` that exists in the document."""
        for end in range(len(location), -1, -1):
            found = self.lines.get(tuple(location[:end]))
            if found is not None:
                return found
        return self.line


@dataclass
class LoadResult:
    documents: list[SourceDocument] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def load_paths(paths: Iterable[str | Path]) -> LoadResult:
    """Every document of every YAML file under ``paths`` (files or folders), sorted by path."""
    result = LoadResult()
    for path in _expand(paths, result):
        try:
            raw = path.read_bytes() if path.stat().st_size <= MAX_FILE_BYTES else None
        except OSError as error:
            result.problems.append(Problem(f"cannot read: {error.strerror}", file=str(path)))
            continue
        if raw is None:
            size_mb = path.stat().st_size / 1e6
            reason = f"file is {size_mb:.1f} MB; the limit is 1 MiB (a ConfigMap cannot hold more)"
            result.problems.append(Problem(reason, file=str(path)))
            continue
        loaded = load_text(raw, str(path))
        result.documents.extend(loaded.documents)
        result.problems.extend(loaded.problems)
    return result


def _expand(paths: Iterable[str | Path], result: LoadResult) -> Iterator[Path]:
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file()
            )
        elif path.is_file():
            yield path
        else:
            result.problems.append(Problem("no such file or folder", file=str(path)))


def load_text(raw: bytes | str, file: str = "<input>") -> LoadResult:
    """Parse YAML text or bytes into located documents, never raising on bad input."""
    result = LoadResult()
    if isinstance(raw, bytes):
        if len(raw) > MAX_FILE_BYTES:
            reason = f"input is {len(raw) / 1e6:.1f} MB; the limit is 1 MiB"
            return LoadResult(problems=[Problem(reason, file=file)])
        if b"\x00" in raw:
            return LoadResult(problems=[Problem("binary content, not YAML text", file=file)])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            reason = f"not UTF-8 text (invalid byte at offset {error.start})"
            return LoadResult(problems=[Problem(reason, file=file)])
    else:
        text = raw
        if len(text) > MAX_FILE_BYTES:
            return LoadResult(problems=[Problem("input is over the 1 MiB limit", file=file)])
    try:
        _check_events(text)
        for node in yaml.compose_all(text, Loader=_FAST_LOADER):
            if node is None:
                continue
            _check_size(node)
            data = _construct(node)
            lines: dict[Location, int] = {}
            _index_lines(node, (), lines)
            result.documents.append(
                SourceDocument(data, file=file, line=node.start_mark.line + 1, lines=lines)
            )
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 0
        detail = str(error.problem or error.context)
        if "nesting depth" in detail:  # PyYAML >= 6.0.4 has its own depth limit
            detail = f"nested too deeply (limit {MAX_DEPTH} levels)"
        result.problems.append(Problem(f"invalid YAML: {detail}", file=file, line=line))
    except yaml.YAMLError as error:
        result.problems.append(Problem(f"invalid YAML: {error}", file=file))
    except YamlLimitError as error:
        result.problems.append(Problem(str(error), file=file, line=error.line))
    except ValueError as error:
        # The safe constructors raise plain ValueError for a date such as 2001-13-45 or
        # an integer over Python's 4300-digit conversion limit.
        result.problems.append(Problem(f"invalid YAML value: {error}", file=file))
    except RecursionError:
        reason = f"YAML nested too deeply (limit {MAX_DEPTH} levels)"
        result.problems.append(Problem(reason, file=file))
    return result


def _check_events(text: str) -> None:
    """Refuse a stream with too many nodes or too deep a nesting while it is parsed.

    Counting parser events stops a 1 MB flow sequence or 50,000 nested brackets at the
    limit, before any node tree is built for them.
    """
    nodes = depth = 0
    for event in yaml.parse(text, Loader=_FAST_LOADER):
        if isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            continue
        if not isinstance(event, yaml.NodeEvent):
            continue
        nodes += 1
        line = event.start_mark.line + 1 if event.start_mark else 0
        if nodes > MAX_NODES:
            raise YamlLimitError(f"more than {MAX_NODES} YAML nodes in one input", line)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlLimitError(f"YAML nested too deeply (limit {MAX_DEPTH} levels)", line)


def _construct(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_size(root: yaml.Node) -> None:
    """Refuse documents whose alias-expanded size or depth is over the limits.

    Sizes are memoised per node, so a billion-laughs document costs one pass over
    its distinct nodes, not over its expansion.
    """
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise YamlLimitError(f"YAML nested too deeply (limit {MAX_DEPTH} levels)")
        known = sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        if total > MAX_NODES:
            raise YamlLimitError(
                f"document expands to more than {MAX_NODES} nodes (a YAML alias bomb?)"
            )
        sizes[id(node)] = total
        return total

    size(root, 0)


def _index_lines(node: yaml.Node, location: Location, lines: dict[Location, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        children = [
            ((*location, key.value), key, value)
            for key, value in node.value
            if isinstance(key, yaml.ScalarNode)
        ]
    elif isinstance(node, yaml.SequenceNode):
        children = [((*location, i), child, child) for i, child in enumerate(node.value)]
    else:
        return
    for child_location, marker, value in children:
        if child_location not in lines:
            lines[child_location] = marker.start_mark.line + 1
            _index_lines(value, child_location, lines)
