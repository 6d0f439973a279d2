"""Read Kubernetes YAML from files, directories and stdin, keeping line numbers.

``helm template ... | quiesce lint -`` and ``quiesce lint manifests/`` must both
work, a broken document must not hide the good ones around it, and every
error and finding must point at a file and a line. So documents are composed
to YAML nodes (which carry their marks), constructed with the safe loader,
and the node is kept beside the object to find the line of any field later.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, TextIO

import yaml

from quiesce.lint import findings

PathPart = str | int
FieldPath = tuple[PathPart, ...]

STDIN = "-"
STDIN_NAME = "<stdin>"
YAML_SUFFIXES = (".yaml", ".yml", ".json")

# C parser when libyaml is present: about five times faster on large inputs.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """The safe loader with the resolver's per-node bookkeeping cut to what it uses.

    The parser asks the resolver about every node; the safe loader has no path
    resolvers, so descending and ascending do nothing, and a scalar's tag
    depends only on its first character's implicit resolvers.
    """

    def descend_resolver(self, _current_node: object, _current_index: object) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            if implicit[0]:
                for tag, regexp in self.yaml_implicit_resolvers.get(value[:1], ()):
                    if regexp.match(value):
                        return tag  # type: ignore[no-any-return]
            return _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP


_STR: Final = "tag:yaml.org,2002:str"
_SEQ: Final = "tag:yaml.org,2002:seq"
_MAP: Final = "tag:yaml.org,2002:map"
_MERGE: Final = "tag:yaml.org,2002:merge"
_DOCUMENT_START = re.compile(r"^---(?=\s|$)", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Manifest:
    """One Kubernetes object and where it came from."""

    obj: Mapping[str, Any]
    location: findings.Location
    node: yaml.Node | None = dataclasses.field(default=None, compare=False, repr=False)
    line_offset: int = 0
    """Lines before the chunk this node was parsed from (after a salvage)."""

    def line_of(self, path: FieldPath) -> int | None:
        """The 1-based line of ``path`` in this object, or of its deepest existing parent."""
        if self.node is None:
            return self.location.line
        return _line_of(self.node, path) + self.line_offset


@dataclasses.dataclass
class Loaded:
    """What reading the input produced (mutable while reading, read-only after)."""

    manifests: list[Manifest] = dataclasses.field(default_factory=list)
    errors: list[findings.InputError] = dataclasses.field(default_factory=list)
    skipped: int = 0

    def extend(self, other: Loaded) -> None:
        self.manifests.extend(other.manifests)
        self.errors.extend(other.errors)
        self.skipped += other.skipped


def load_paths(paths: Sequence[str], *, stdin: TextIO | None = None) -> Loaded:
    """Read every path (``-`` is stdin; directories are walked recursively)."""
    loaded = Loaded()
    for path in paths:
        if path == STDIN:
            if stdin is None:
                loaded.errors.append(findings.InputError(findings.Location(STDIN_NAME), "no stdin"))
                continue
            loaded.extend(load_text(stdin.read(), STDIN_NAME))
            continue
        if os.path.isdir(path):
            for file in _walk(path):
                loaded.extend(load_file(file))
            continue
        loaded.extend(load_file(path))
    return loaded


def load_file(path: str) -> Loaded:
    """Read one file; an unreadable or undecodable file is an input error."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        return Loaded(errors=[_error(path, None, f"cannot read: {e.strerror or e}")])
    return load_bytes(raw, path)


def load_bytes(raw: bytes, path: str) -> Loaded:
    """Parse bytes read from ``path`` (a file, or stdin); text that is not UTF-8 is an error."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        return Loaded(errors=[_error(path, line, "not UTF-8 text")])
    return load_text(text, path)


def load_text(text: str, path: str) -> Loaded:
    """Parse a YAML stream; on a syntax error, salvage the other documents."""
    try:
        return _load_stream(text, path, line_offset=0)
    except _StreamError:
        pass
    # The parser cannot resume after an error, so parse document by document:
    # a line starting with `---` always starts a new document in YAML.
    loaded = Loaded()
    starts = [0] + [m.start() for m in _DOCUMENT_START.finditer(text) if m.start() > 0]
    for begin, end in zip(starts, [*starts[1:], len(text)], strict=True):
        offset = text.count("\n", 0, begin)
        try:
            loaded.extend(_load_stream(text[begin:end], path, line_offset=offset))
        except _StreamError as e:
            loaded.extend(e.partial)
            loaded.errors.append(e.error)
    return loaded


def is_object(value: object) -> bool:
    """A Kubernetes object has at least a string ``kind``."""
    return isinstance(value, dict) and isinstance(value.get("kind"), str) and bool(value["kind"])


class _StreamError(Exception):
    """A YAML stream failed part-way; carries what was read before the failure."""

    def __init__(self, error: findings.InputError, partial: Loaded) -> None:
        super().__init__(str(error))
        self.error = error
        self.partial = partial


def _load_stream(text: str, path: str, *, line_offset: int) -> Loaded:
    loaded = Loaded()
    loader = _Loader(text)
    # Kept node trees are millions of small objects; the cyclic GC rescanning them
    # on every generation-2 pass tripled load time (benchmarks/lint.py). Nothing
    # here creates garbage cycles worth collecting before the run ends.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node() said there is one
                break
            value = _Builder(loader).build(node)
            loader.constructed_objects.clear()  # as construct_document does per document
            loader.recursive_objects.clear()
            _collect(loaded, value, node, path, line_offset)
    except yaml.YAMLError as e:
        raise _StreamError(_yaml_error(e, path, line_offset), loaded) from None
    except RecursionError:
        error = _error(path, line_offset + 1, "document is nested too deeply to read")
        raise _StreamError(error, loaded) from None
    finally:
        loader.dispose()
        if gc_was_enabled:
            gc.enable()
    return loaded


class _Builder:
    """Python values from a composed node tree, several times faster than
    SafeConstructor for Kubernetes YAML (almost all plain strings, maps, lists).

    Anything unusual (other scalar types, merge keys, custom tags) is handed to
    the safe constructor itself, so results and errors are the safe loader's.
    """

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.memo: dict[int, object] = {}

    def build(self, node: yaml.Node) -> object:
        tag = node.tag
        if tag == _STR and isinstance(node, yaml.ScalarNode):
            return node.value
        known = self.memo.get(id(node))
        if known is not None:
            return known  # an alias: the same object, as the safe loader gives
        if tag == _SEQ and isinstance(node, yaml.SequenceNode):
            items: list[object] = []
            self.memo[id(node)] = items
            items.extend(self.build(child) for child in node.value)
            return items
        if tag == _MAP and isinstance(node, yaml.MappingNode):
            mapping: dict[object, object] = {}
            self.memo[id(node)] = mapping
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE:  # `<<: *defaults`: let the safe loader merge
                    del self.memo[id(node)]
                    break
                key = self.build(key_node)
                try:
                    mapping[key] = self.build(value_node)
                except TypeError:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        "found unhashable key",
                        key_node.start_mark,
                    ) from None
            else:
                return mapping
        value = self.loader.construct_object(node, deep=True)
        self.memo[id(node)] = value
        return value


def _collect(loaded: Loaded, value: object, node: yaml.Node, path: str, offset: int) -> None:
    if value is None:
        return  # an empty document (`---` followed by nothing, or only comments)
    if not is_object(value):
        loaded.skipped += 1
        return
    assert isinstance(value, dict)
    items = value.get("items")
    if value["kind"].endswith("List") and isinstance(items, list):
        items_node = _child(node, "items")
        for index, item in enumerate(items):
            item_node = _child(items_node, index) if items_node is not None else None
            if is_object(item):
                line = (item_node or node).start_mark.line + 1 + offset
                location = findings.Location(path, line)
                loaded.manifests.append(Manifest(item, location, item_node, offset))
            elif item is not None:
                loaded.skipped += 1
        return
    location = findings.Location(path, node.start_mark.line + 1 + offset)
    loaded.manifests.append(Manifest(value, location, node, offset))


def _line_of(node: yaml.Node, path: FieldPath) -> int:
    """Line of the key that holds ``path`` (``command:`` rather than its first item)."""
    line = node.start_mark.line
    for part in path:
        found = _entry(node, part)
        if found is None:
            break
        anchor, node = found
        line = anchor.start_mark.line
    return line + 1


def _child(node: yaml.Node, part: PathPart) -> yaml.Node | None:
    found = _entry(node, part)
    return found[1] if found is not None else None


def _entry(node: yaml.Node, part: PathPart) -> tuple[yaml.Node, yaml.Node] | None:
    """``(key node, value node)`` of a mapping key or ``(item, item)`` of a list index."""
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                return key, value
        return None
    in_range = isinstance(part, int) and 0 <= part < len(node.value)
    if isinstance(node, yaml.SequenceNode) and in_range:
        item: yaml.Node = node.value[part]
        return item, item
    return None


def _yaml_error(e: yaml.YAMLError, path: str, offset: int) -> findings.InputError:
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 + offset if mark is not None else None
        what = " ".join(part for part in (e.context, e.problem) if part)
        return _error(path, line, f"invalid YAML: {what or e}")
    return _error(path, offset + 1, f"invalid YAML: {e}")


def _error(path: str, line: int | None, message: str) -> findings.InputError:
    return findings.InputError(findings.Location(path, line), message)


def _walk(directory: str) -> Iterator[str]:
    """YAML files under ``directory``, in a stable order, skipping hidden folders."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        yield from (os.path.join(root, f) for f in sorted(files) if f.endswith(YAML_SUFFIXES))
