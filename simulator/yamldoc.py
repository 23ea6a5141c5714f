"""YAML that people write (scenarios, fault plans), read so that errors can name a line.

One reader for every such file. It refuses what PyYAML would otherwise take silently (a
key given twice, a key that is a list or a mapping, an alias that holds itself), and it
keeps the parsed nodes, so a problem found later in the data can still name its line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


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


def read_yaml(text: str) -> YamlDocument:
    """Parse one YAML document (safe types only); raises ``YamlError`` naming the line."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:  # e.g. a control character the YAML reader refuses
        raise YamlError(0, f"not valid YAML: {exc}") from None
    try:
        root = loader.get_single_node()
        if root is None:
            return YamlDocument(None, None)
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
