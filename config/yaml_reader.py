"""Reading YAML fast, and finding line/column marks only when an error needs them.

National-scale configs (100k milestones, ~17 MB) take PyYAML's C loader ~16 s;
rapidyaml parses them in well under a second. So valid files take the fast path
(rapidyaml → its JSON emitter → ``json.loads``), and positions are computed
afterwards, only for the paths that have an error, by re-parsing that one file
in place and turning a scalar's address in the buffer into a line and column.

Every scalar stays text (``parse_int=str``): YAML 1.1's resolvers turn ``no``
into False and raise a bare ``ValueError`` on ``2023-02-30``; here the schema
parses dates, numbers and booleans itself and reports them with a position.
Only ``true``/``false``/``null`` arrive typed.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import ryml

from config.errors import ConfigError, Diagnostic, Path, PathPart

_STDERR_LOCK = threading.Lock()
# What reading one file may cost. A national config is ~18 MB in all, its largest file a
# few MB; 400 bytes of nested aliases would otherwise expand to billions of nodes.
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_ALIAS_VALUES = 100_000  # values that aliases (*name, <<: *name) may add when expanded
MAX_DEPTH = 64  # nesting levels (rapidyaml's emitter stops there; mocd's schema needs 6)
# An alias (`*name`) where YAML allows one: after a space, a flow indicator or a line
# start. Text like "5 * 3" also matches: that only costs a closer look at the tree.
_ALIAS = re.compile(rb"(?:^|[\s\[{,])\*[^\s,\[\]{}]", re.MULTILINE)
_RYML_ERROR = re.compile(r"line=(\d+) col=(\d+)[^:]*: ERROR: \[\w+\] (.*)")
_RYML_VISIT_ERROR = re.compile(r"ERROR: \[visit\] (.*)")


@dataclass(frozen=True)
class YamlFile:
    """One parsed file: its data (dicts, lists, text) and its bytes for later positions."""

    display: str
    data: Any
    raw: bytes


class _DuplicateKeyError(Exception):
    pass


@contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Collect what rapidyaml's C++ error handler prints on fd 2 instead of showing it.

    The Python binding raises an exception with an empty message and prints the
    real one (with line and column) to the process's stderr; we want that text in
    our one-line error, and nothing on the user's terminal.
    """
    captured: list[str] = []
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", errors="replace"))


def _parse_tree(raw: bytes | bytearray, display: str, *, in_place: bool = False,
                aliases: bool = False) -> Any:
    """The rapidyaml tree of ``raw``, its aliases resolved unless ``in_place`` (positions
    only). Before resolving, what the aliases would expand to is counted (``aliases``: the
    text seems to have some), and refused beyond :data:`MAX_ALIAS_VALUES`."""
    with _captured_stderr() as captured:
        try:
            if in_place:
                assert isinstance(raw, bytearray)
                tree = ryml.parse_in_place(raw)
            else:
                tree = ryml.parse_in_arena(raw)
        except Exception:  # rapidyaml raises bare exceptions; the text went to stderr
            failed = True
        else:
            failed = False
    if not failed and not in_place:
        if aliases:
            _check_aliases(tree, bytes(raw), display)
        with _captured_stderr() as captured:
            try:
                tree.resolve()
            except Exception:
                failed = True
    if failed:
        tab = _indenting_tab(bytes(raw))
        if tab is not None:
            raise ConfigError([Diagnostic(display, (), "a tab indents this line; YAML indents "
                                          "with spaces only", *tab)])
        text = captured[0] if captured else ""
        match = _RYML_ERROR.search(text)
        if match:
            line, col, message = int(match[1]), int(match[2]), match[3].strip()
            raise ConfigError(
                [Diagnostic(display, (), f"not valid YAML: {message}", line, max(col, 1))]
            )
        visit = _RYML_VISIT_ERROR.search(text)
        message = visit[1].strip() if visit else "the YAML parser rejected it"
        raise ConfigError([Diagnostic(display, (), f"not valid YAML: {message}", 1, 1)])
    return tree


def _check_aliases(tree: Any, raw: bytes, display: str) -> None:
    """Refuse aliases that would expand to more than :data:`MAX_ALIAS_VALUES` values,
    before rapidyaml copies anything: each alias adds the size of its anchor's subtree,
    counted with the aliases inside it (memoised, so eight levels of ten aliases cost a
    few hundred steps, not the 10^8 values they stand for)."""
    count = tree.size()
    anchors: dict[str, list[int]] = {}
    refs: list[tuple[int, str]] = []
    for node in range(count):
        for has, name in ((tree.has_key_anchor, tree.key_anchor),
                          (tree.has_val_anchor, tree.val_anchor)):
            if has(node):
                anchors.setdefault(_text(bytes(name(node))), []).append(node)
        for is_ref, name in ((tree.is_key_ref, tree.key_ref), (tree.is_val_ref, tree.val_ref)):
            if is_ref(node):
                refs.append((node, _text(bytes(name(node))).lstrip("*")))
    if not refs:
        return
    sizes: dict[int, int] = {}
    refs_at = dict(refs)

    def size(node: int, seen: frozenset[int]) -> int:
        if node in refs_at:
            target = _anchor_before(anchors.get(refs_at[node], []), node)
            if target is None or target in seen:
                return 1  # unknown or recursive: rapidyaml reports it
            node, seen = target, seen | {target}
        if node in sizes:
            return sizes[node]
        total = 1
        child = tree.first_child(node)
        while child != ryml.NONE:
            total += size(child, seen)
            if total > MAX_ALIAS_VALUES:
                break
            child = tree.next_sibling(child)
        sizes[node] = total
        return total

    added = 0
    for i, (node, name) in enumerate(refs):
        added += size(node, frozenset())
        if added > MAX_ALIAS_VALUES:
            line, column = _alias_position(raw, name, sum(1 for _, n in refs[:i] if n == name))
            raise ConfigError([Diagnostic(
                display, (), f"the aliases (*{name} …) here would expand to more than "
                f"{MAX_ALIAS_VALUES:,} values; write the values out, or name a group of "
                "units instead of repeating a list", line, column)])


def _anchor_before(candidates: list[int], node: int) -> int | None:
    """The anchor an alias at ``node`` means: the last one of its name before it (node
    ids follow the document's order)."""
    found = None
    for candidate in candidates:
        if candidate < node:
            found = candidate
    return found


def _alias_position(raw: bytes, name: str, nth: int) -> tuple[int, int]:
    """Line and column of the ``nth`` alias ``*name`` in the text."""
    pattern = re.compile(rb"\*" + re.escape(name.encode("utf-8")) + rb"(?![^\s,\]}])")
    for i, match in enumerate(pattern.finditer(raw)):
        if i == nth:
            return _line_column(raw, match.start())
    return 1, 1


def _too_deep(tree: Any) -> Path | None:
    """The path of the first node nested deeper than :data:`MAX_DEPTH`, if any."""
    stack: list[tuple[int, Path]] = [(tree.root_id(), ())]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_DEPTH:
            return path
        child, index = tree.first_child(node), 0
        while child != ryml.NONE:
            part: PathPart = (_key(tree, child) if tree.has_key(child)
                              else index)
            stack.append((child, path if tree.is_doc(child) else (*path, part)))
            child, index = tree.next_sibling(child), index + 1
    return None


def _deep_position(raw: bytes) -> tuple[int, int]:
    """Where the text first nests deeper than :data:`MAX_DEPTH`: the bracket that opens
    level ``MAX_DEPTH`` of a flow list or mapping, or the first line indented by more than
    two spaces a level (quoted text and comments are not told apart: it is a pointer for
    a person, and 1:1 when neither is found)."""
    depth = 0
    for match in re.finditer(rb"[\[\]{}]", raw):
        depth += 1 if match[0] in b"[{" else -1
        if depth >= MAX_DEPTH:
            return _line_column(raw, match.start())
    indented = re.search(rb"^ {%d,}\S" % (2 * MAX_DEPTH), raw, re.MULTILINE)
    return (_line_column(raw, indented.end() - 1) if indented else (1, 1))


def _indenting_tab(raw: bytes) -> tuple[int, int] | None:
    """The line/column of the first tab in a line's indentation (the usual culprit)."""
    match = re.search(rb"^[ ]*\t", raw, re.MULTILINE)
    return None if match is None else _line_column(raw, match.end() - 1)


def _decode(raw: bytes, display: str) -> bytes:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _line_column(raw, exc.start)
        raise ConfigError(
            [
                Diagnostic(
                    display,
                    (),
                    f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
                    line,
                    column,
                )
            ]
        ) from None
    return raw


def _line_column(raw: bytes, offset: int) -> tuple[int, int]:
    line = raw.count(b"\n", 0, offset) + 1
    start = raw.rfind(b"\n", 0, offset) + 1
    column = len(raw[start:offset].decode("utf-8", errors="replace")) + 1
    return line, column


def parse_yaml(raw: bytes, display: str) -> YamlFile:
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError([Diagnostic(
            display, (), f"{len(raw) / 1048576:.0f} MB is more than a config file may be "
            f"({MAX_FILE_BYTES // 1048576} MB); split it into several files", 1, 1)])
    raw = _decode(raw, display)
    tree = _parse_tree(raw, display, aliases=_ALIAS.search(raw) is not None)
    root = tree.root_id()
    if tree.is_stream(root):
        docs = tree.num_children(root)
        if docs > 1:
            second = raw.find(b"\n---", 3)
            line = _line_column(raw, second + 1)[0] if second >= 0 else 1
            raise ConfigError(
                [Diagnostic(display, (), f"{docs} YAML documents ('---'); use one per file",
                            line, 1)]
            )
    try:
        with _captured_stderr():  # the emitter prints its own errors on fd 2
            emitted = ryml.emit_json(tree)
    except Exception:  # rapidyaml's emitter stops at MAX_DEPTH levels
        deep = _too_deep(tree)
        if deep is None:
            raise
        line, column = _deep_position(raw)
        raise ConfigError([Diagnostic(
            display, deep[:1], f"nested more than {MAX_DEPTH} levels deep (lists in lists, or "
            "indentation); a mocd file needs at most a few levels", line, column)]) from None
    if emitted is None:
        return YamlFile(display, None, raw)
    if "\udced" in emitted:  # a "\ud83d\ude42" escape: see _text
        emitted = _text(emitted.encode("utf-8", "surrogateescape"))
    try:
        data = json.loads(
            emitted,
            parse_int=str,
            parse_float=str,
            parse_constant=str,
            object_pairs_hook=_no_duplicates,
        )
    except (ValueError, _DuplicateKeyError):
        # Scalars the JSON emitter writes bare (`+5`) or duplicate keys: walk the
        # tree instead, which keeps every scalar as text and names duplicate paths.
        try:
            data = _Walker(tree, display).build()
        except ConfigError as exc:
            raise ConfigError(locate(exc.diagnostics, raw)) from None
    if isinstance(data, list) and tree.is_stream(root):
        data = data[0] if data else None
    return YamlFile(display, data, raw)


def _text(data: bytes) -> str:
    """What rapidyaml decoded, as text. The file itself is valid UTF-8 (checked first), but
    rapidyaml writes a double-quoted ``\\uD83D\\uDE42`` escape (a UTF-16 surrogate pair,
    as JSON-minded authors write an emoji) as two 3-byte surrogate sequences: join them
    into the one character they mean; an unpaired surrogate becomes U+FFFD."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        lone = data.decode("utf-8", "surrogatepass")
        return lone.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _key(tree: Any, node: int) -> str:
    """A mapping key as text; an empty key (``: value``) is ``""``, not a crash."""
    key = tree.key(node)
    return "" if key is None else _text(bytes(key))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = {key: None if value == "~" else value for key, value in pairs}  # `~` is null
    if len(result) != len(pairs):
        raise _DuplicateKeyError
    return result


class _Walker:
    """The slow, exact conversion: every scalar as text, duplicate keys reported."""

    def __init__(self, tree: Any, display: str) -> None:
        self.tree = tree
        self.display = display
        self.duplicates: list[Path] = []

    def build(self) -> Any:
        data = self._node(self.tree.root_id(), ())
        if self.duplicates:
            raise ConfigError(
                Diagnostic(self.display, p, f"duplicate key '{p[-1]}'", at_key=True)
                for p in self.duplicates
            )
        return data

    def _node(self, node: int, path: Path) -> Any:
        t = self.tree
        if t.is_map(node):
            result: dict[str, Any] = {}
            child = t.first_child(node)
            while child != ryml.NONE:
                key = _key(t, child)
                if key in result:
                    self.duplicates.append((*path, key))
                result[key] = self._node(child, (*path, key))
                child = t.next_sibling(child)
            return result
        if t.is_seq(node) or t.is_stream(node):
            items: list[Any] = []
            child = t.first_child(node)
            while child != ryml.NONE:
                items.append(self._node(child, (*path, len(items))))
                child = t.next_sibling(child)
            return items
        if t.is_doc(node) and not t.has_val(node):
            return None
        if t.val_is_null(node):
            return None
        text = _text(bytes(t.val(node)))
        if t.is_val_plain(node) and text in ("true", "false"):
            return text == "true"
        return text


class _PyBuffer(ctypes.Structure):
    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.py_object),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


def _address(view: Any) -> int:
    """The memory address a buffer (a memoryview rapidyaml returns) points at."""
    buffer = _PyBuffer()
    ctypes.pythonapi.PyObject_GetBuffer(ctypes.py_object(view), ctypes.byref(buffer), 0)
    try:
        return int(buffer.buf or 0)
    finally:
        ctypes.pythonapi.PyBuffer_Release(ctypes.byref(buffer))


class PositionIndex:
    """Line/column of YAML paths in one file, computed on demand by an in-place re-parse."""

    def __init__(self, raw: bytes, display: str) -> None:
        self.raw = raw
        self._buffer = bytearray(raw)
        self._base = _address(memoryview(self._buffer))
        self._tree = _parse_tree(self._buffer, display, in_place=True)

    def locate(self, path: Sequence[PathPart], *, at_key: bool = False) -> tuple[int, int]:
        t = self._tree
        node = t.root_id()
        if t.is_stream(node) and t.has_children(node):
            node = t.first_child(node)
        for i, part in enumerate(path):
            child = self._child(node, part)
            if child is None:
                # `units: x` stands for `units: [x]`: an index into a scalar is the scalar.
                last_index = i == len(path) - 1 and isinstance(part, int)
                return self._position(node, at_key=not (last_index and t.has_val(node)))
            node = child
        return self._position(node, at_key=at_key)

    def is_scalar_for_list(self, path: Sequence[PathPart]) -> bool:
        """Whether ``path`` ends in an index into a scalar written for a one-item list."""
        if not path or not isinstance(path[-1], int):
            return False
        t = self._tree
        node = t.root_id()
        if t.is_stream(node) and t.has_children(node):
            node = t.first_child(node)
        for part in path[:-1]:
            child = self._child(node, part)
            if child is None:
                return False
            node = child
        return bool(t.has_val(node)) and not t.is_seq(node)

    def _child(self, node: int, part: PathPart) -> int | None:
        t = self._tree
        if isinstance(part, int):
            if t.is_seq(node) and 0 <= part < t.num_children(node):
                return int(t.child(node, part))
            return None
        found = None
        if t.is_map(node):  # the last of duplicate keys is the one that counts
            child = t.first_child(node)
            while child != ryml.NONE:
                if _key(t, child) == part:
                    found = int(child)
                child = t.next_sibling(child)
        return found

    def _position(self, node: int, *, at_key: bool) -> tuple[int, int]:
        t = self._tree
        while True:  # a loop, not recursion: `[[[…]]]` may be thousands of levels deep
            key = t.key(node) if t.has_key(node) else None
            val = t.val(node) if t.has_val(node) else None
            views = [v for v in ((key, val) if at_key else (val, key))
                     if v is not None and len(v)]
            for view in views:
                offset = _address(view) - self._base
                if 0 <= offset <= len(self.raw):
                    return _line_column(self.raw, offset)
            if not t.has_children(node):
                break
            node, at_key = t.first_child(node), True  # a mapping or list: its first item
        if t.is_seq(node) or t.is_map(node):  # `- []` or `- {}`: no key, value or item
            after = self._end_before(node)
            if after is not None:
                found = self.raw.find(b"[" if t.is_seq(node) else b"{", after)
                if found >= 0:
                    return _line_column(self.raw, found)
        return 1, 1

    def _end_before(self, node: int) -> int | None:
        """Where the text before ``node`` ends: its previous sibling's, else its parent's
        key (an empty container has no text of its own that the tree points at)."""
        t = self._tree
        before = t.prev_sibling(node)
        return self._end_of(before if before != ryml.NONE else t.parent(node))

    def _end_of(self, node: int) -> int | None:
        """Where the text of ``node`` ends: its value, else its key, else its last item."""
        t = self._tree
        while node != ryml.NONE:
            for has, view in ((t.has_val, t.val), (t.has_key, t.key)):
                if has(node) and len(view(node)):
                    offset = _address(view(node)) - self._base
                    if 0 <= offset <= len(self.raw):
                        return offset + len(view(node))
            if not t.has_children(node):
                return None
            node = t.last_child(node)
        return None


def locate(diagnostics: Sequence[Diagnostic], raw: bytes) -> list[Diagnostic]:
    """Fill in the line and column of the diagnostics of one file that have none yet."""
    todo = [d for d in diagnostics if d.line == 0]
    if not todo:
        return list(diagnostics)
    display = todo[0].file
    try:
        index = PositionIndex(raw, display)
    except ConfigError:
        return [replace(d, line=1, column=1) if d.line == 0 else d for d in diagnostics]
    located = []
    for d in diagnostics:
        if d.line == 0:
            line, column = index.locate(d.path, at_key=d.at_key)
            path = d.path[:-1] if index.is_scalar_for_list(d.path) else d.path
            d = replace(d, path=path, line=line, column=column)
        located.append(d)
    return located
