"""YAML that people write (scenarios, fault plans), read so that errors can name a line.

One reader for every such file. It refuses what PyYAML would otherwise take silently (a
key given twice, a key that is a list or a mapping, an alias that holds itself), and it
keeps the parsed nodes, so a problem found later in the data can still name its line.

Files are shared, so they are bounded before anything is built from them: ``check_nodes``
(also used by the cassette reader) measures the composed node graph as it would be once
every alias is written out, and refuses, naming the line, a document that would expand past
a budget (the "billion laughs": ten aliases of ten aliases ... are ten billion values to
anything that copies or serialises the data) or nest deeper than ``MAX_DEPTH``. A reader
with tighter needs passes its own bounds (a scenario: 100,000 values, 64 levels); each bound
is still checked here, in one place, with one message. ``json_problems`` finds every value
JSON cannot carry (dates, sets, binary, other tags, keys that are not text), each with its
line and its place in the data, for a reader that reports every problem at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

# Deeper than any file a person writes, far below Python's recursion limit (about three
# interpreter frames per level in the composer and constructor, and more in consumers).
MAX_DEPTH = 200
# Values an alias-free document may hold is bounded by its length; this much more may come
# from aliases (anchors reused for repeated headers or bodies) before the file is refused.
ALIAS_ALLOWANCE = 1_000_000
# Python refuses to turn longer digit strings into an int (sys.get_int_max_str_digits).
MAX_INT_DIGITS = 4000

_STR, _INT, _FLOAT = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_JSON_SCALARS = frozenset({_STR, _INT, _FLOAT, "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"})
_SURROGATE = re.compile("[\ud800-\udfff]")


class YamlError(Exception):
    """Text that is not a usable YAML document; ``line`` is 1-based, 0 when unknown, and
    ``path`` is where in the data the problem is (keys and list indexes; () is the top),
    None when the text could not be parsed that far."""

    def __init__(self, line: int, message: str, path: tuple[Any, ...] | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.path = path


@dataclass(frozen=True)
class YamlProblem:
    """A problem that still left a usable document (a key given twice: the last one won)."""

    line: int
    message: str


@dataclass(frozen=True)
class YamlDocument:
    """The data of one YAML document, its nodes (``root`` is None for an empty text), and
    the problems found while reading it."""

    data: Any
    root: yaml.Node | None
    problems: tuple[YamlProblem, ...] = ()

    def line(self, path: list[Any], key: str | None = None) -> int:
        """The 1-based line of the value at ``path`` in the data, or of ``key``'s name in
        the mapping there; the nearest enclosing line when the path is not in the file."""
        if self.root is None:
            return 1
        node = self.root
        for seg in [*path, key] if key is not None else path:
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if str(k.value) == str(seg):
                        node = k if seg is key and key is not None else v
                        break
                else:
                    break
            elif isinstance(node, yaml.SequenceNode) and isinstance(seg, int) and seg < len(node.value):
                node = node.value[seg]
            else:
                break
        return node.start_mark.line + 1


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _too_deep(line: int, max_depth: int) -> YamlError:
    return YamlError(line, f"the YAML is nested too deeply (more than {max_depth} levels); "
                     "write it flatter")


def check_nodes(root: yaml.Node, budget: int, *, json_only: bool = False,
                max_depth: int = MAX_DEPTH) -> int:
    """The number of values ``root`` holds once every alias is written out; raises
    ``YamlError`` naming the line when that passes ``budget``, when it nests deeper than
    ``max_depth`` (at most ``MAX_DEPTH``), or when an alias holds the node it is in.

    Iterative, and each node is measured once however many aliases share it (sizes and
    depths are memoised by node), so the check itself is linear in the text. With
    ``json_only`` every value must also be one JSON has: text, a number, true/false, null,
    a list, or a mapping whose keys are text (no dates, sets, binary or other tags); the
    first that is not is raised (``json_problems`` lists them all).
    """
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            children = _children(node)
            total = 1 + sum(size[id(c)] for c in children)
            deep = 1 + max((height[id(c)] for c in children), default=0)
            if total > budget:
                raise YamlError(_line(node), f"this value would hold more than {budget:,} values "
                                "once its YAML aliases are written out; write it out, "
                                "or use fewer aliases")
            if deep > max_depth:
                raise _too_deep(_line(node), max_depth)
            size[key], height[key] = total, deep
            open_.discard(key)
            continue
        if key in size:
            continue
        if key in open_:
            raise YamlError(_line(node), "a YAML alias refers to the node that holds it; "
                            "write the value out instead")
        if json_only:
            problem = _json_problem(node, integer_keys=False)
            if problem is not None:
                raise problem
        open_.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node))
    return size[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return []


def json_problems(root: yaml.Node, *, integer_keys: bool = False) -> list[YamlError]:
    """Every value under ``root`` that JSON cannot carry, each a ``YamlError`` with its line
    and its ``path`` in the data, in document order. Each node is looked at once, however
    many aliases share it. With ``integer_keys``, a key may also be an integer (YAML reads
    ``201: 1`` with one; the reader turns it into text)."""
    found: list[YamlError] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[Any, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        problem = _json_problem(node, integer_keys=integer_keys)
        if problem is not None:
            problem.path = path
            found.append(problem)
        if isinstance(node, yaml.MappingNode):
            stack.extend((v, (*path, str(k.value))) for k, v in reversed(node.value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, (*path, i)) for i, v in reversed(list(enumerate(node.value))))
    return found


def _json_problem(node: yaml.Node, *, integer_keys: bool) -> YamlError | None:
    """Why this one node (not its children) is not a JSON value, or None."""
    if isinstance(node, yaml.ScalarNode):
        if node.tag not in _JSON_SCALARS:
            kind = node.tag.rpartition(":")[2] or node.tag
            return YamlError(_line(node), f"a {kind} value ({str(node.value)[:40]!r}) is not one "
                             "JSON can carry; quote it to make it text")
        if node.tag == _INT and len(node.value) > MAX_INT_DIGITS:
            return YamlError(_line(node), f"a number with more than {MAX_INT_DIGITS} digits; "
                             "quote it to make it text")
        if node.tag == _STR and _SURROGATE.search(node.value):
            return YamlError(_line(node), "text holds a lone UTF-16 surrogate (an escape such as "
                             "\\ud800), which no UTF-8 text can hold; remove it")
    elif isinstance(node, yaml.MappingNode):
        if node.tag == "tag:yaml.org,2002:set":
            return YamlError(_line(node), "a set mapping is not one JSON can carry; write a list: "
                             "[a, b]")
        if node.tag != "tag:yaml.org,2002:map":
            return YamlError(_line(node), f"a {node.tag.rpartition(':')[2]} mapping is not one JSON "
                             "can carry; write a plain mapping")
        keys = (_STR, _INT) if integer_keys else (_STR,)
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag not in keys:
                return YamlError(_line(key), "a key that is not text (a number, a date, a list "
                                 "or a merge '<<'); quote it")
    elif node.tag != "tag:yaml.org,2002:seq":
        return YamlError(_line(node), f"a {node.tag.rpartition(':')[2]} list is not one JSON "
                         "can carry; write a plain list")
    return None


class CheckedConstruction:
    """A loader mixin: a value its tag cannot build (``!!int abc``, ``!!float x``, a date
    such as 2026-13-45) is a ``YamlError`` naming its line, not a Python error."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)  # type: ignore[misc]
        except (ValueError, TypeError, AttributeError, OverflowError, KeyError, IndexError):
            kind = node.tag.rpartition(":")[2] or node.tag
            raise YamlError(_line(node), f"{str(node.value)[:40]!r} is not a valid {kind}; "
                            "fix the value or quote it to make it text") from None


class _Loader(CheckedConstruction, yaml.SafeLoader):
    """The pure-Python loader (marks and messages people read), with nesting bounded while
    composing: the composer recurses once per level, so depth is counted before Python's
    own recursion limit can turn deep nesting into an error without a line."""

    _depth = 0
    max_depth = MAX_DEPTH

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise _too_deep(self.peek_event().start_mark.line + 1, self.max_depth)
            node = super().compose_node(parent, index)
            assert node is not None  # PyYAML composes a node whenever an event is left
            return node
        finally:
            self._depth -= 1


def _control_character(text: str) -> YamlError | None:
    """A character the YAML reader refuses, with its line and column and the fix."""
    bad = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if bad is None:
        return None
    line = text.count("\n", 0, bad.start()) + 1
    column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
    code = ord(bad[0])
    return YamlError(line, f"column {column}: character U+{code:04X} is a control character YAML "
                     f"does not allow; delete it (in a double-quoted string, write \\u{code:04x} for it)")


def read_yaml(text: str, *, budget: int | None = None, max_depth: int = MAX_DEPTH) -> YamlDocument:
    """Parse one YAML document (safe types only); raises ``YamlError`` naming the line.

    The document is bounded (``check_nodes``: ``budget`` values once aliases are written
    out, by default the text's length and ``ALIAS_ALLOWANCE``; ``max_depth`` levels, at most
    ``MAX_DEPTH``) before any Python value is built from it."""
    problem = _control_character(text)
    if problem is not None:
        raise problem
    max_depth = min(max_depth, MAX_DEPTH)
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:
        raise YamlError(0, f"not valid YAML: {exc}") from None
    loader.max_depth = max_depth
    try:
        root = loader.get_single_node()
        if root is None:
            return YamlDocument(None, None)
        check_nodes(root, len(text) + ALIAS_ALLOWANCE if budget is None else budget,
                    max_depth=max_depth)
        problems: list[YamlProblem] = []
        _KeyCheck(problems).visit(root, ())
        return YamlDocument(loader.construct_document(root), root, tuple(problems))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(mark.line + 1 if mark else 0, f"not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlError(0, f"not valid YAML: {exc}") from None
    except RecursionError:
        raise YamlError(0, "the YAML is nested too deeply; write it flatter") from None
    finally:
        loader.dispose()


class _KeyCheck:
    """Keys are plain names, each given once per mapping; no alias holds itself.

    Each node is checked once, however many aliases share it (a walk that followed every
    alias would take exponential time on aliases of aliases).
    """

    def __init__(self, problems: list[YamlProblem]) -> None:
        self.problems = problems
        self.done: set[int] = set()
        self.open: set[int] = set()

    def visit(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        if id(node) in self.done:
            return
        if id(node) in self.open:
            raise YamlError(node.start_mark.line + 1, "a YAML alias refers to the node that "
                            "holds it; write the value out instead", path)
        self.open.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    raise YamlError(key.start_mark.line + 1,
                                    "keys are field names, not lists or mappings", path)
                if key.value in seen:
                    self.problems.append(YamlProblem(
                        key.start_mark.line + 1,
                        f"'{key.value}' is given twice in this mapping; keep one"))
                seen.add(key.value)
                self.visit(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.visit(item, (*path, i))
        self.open.discard(id(node))
        self.done.add(id(node))
