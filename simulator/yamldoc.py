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
    """Text that is not a usable YAML document; ``line`` is 1-based, 0 when unknown."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class YamlDocument:
    """The data of one YAML document and its nodes (``root`` is None for an empty text)."""

    data: Any
    root: yaml.Node | None

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
        _check_keys(root)
        return YamlDocument(loader.construct_document(root), root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(mark.line + 1 if mark else 0, f"not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlError(0, f"not valid YAML: {exc}") from None
    except RecursionError:
        raise YamlError(0, "a YAML alias refers to the node that holds it; "
                           "write the value out instead") from None
    finally:
        loader.dispose()


def _check_keys(node: yaml.Node) -> None:
    """Keys are plain names, each given once per mapping."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise YamlError(key.start_mark.line + 1,
                                "keys are field names, not lists or mappings")
            if key.value in seen:
                raise YamlError(key.start_mark.line + 1,
                                f"'{key.value}' is given twice in this mapping; keep one")
            seen.add(key.value)
            _check_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_keys(item)
