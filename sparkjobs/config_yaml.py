"""A YAML reader for configuration files that refuses what a config file never needs.

``yaml.safe_load`` is safe from code execution but not from size: a few lines of nested
aliases ("billion laughs") describe a value with a billion leaves, and any code that walks,
prints or copies it (a ``repr`` in an error message is enough) runs out of memory. It also
accepts a key written twice and keeps the last one, so a stale line silently wins.

This loader counts the values a document stands for, with every alias expanded, while it is
composed (before anything is built), and stops at :data:`MAX_VALUES`. It refuses duplicate
keys naming both lines, and files over :data:`MAX_FILE_BYTES`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

__all__ = ["YamlRefused", "load_yaml", "MAX_VALUES", "MAX_FILE_BYTES"]

#: Values in one document, aliases expanded. A runconfig has tens; a generous dependencies
#: file a few thousand.
MAX_VALUES = 100_000
MAX_FILE_BYTES = 4 * 1024 * 1024
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlRefused(yaml.YAMLError):
    """Valid YAML that sparkjobs will not read; str() is the reason, naming the line."""


class _ConfigLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._expanded: dict[int, int] = {}  # id(node) -> values it stands for, aliases expanded
        self._aliases_used = False
        self._checked: set[int] = set()

    def compose_node(self, parent: Node | None, index: Any) -> Node:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            line = self.peek_event().start_mark.line + 1
            node = super().compose_node(parent, index)
            if id(node) not in self._expanded:  # the anchor's node is still being composed
                raise YamlRefused(f"the alias at line {line} refers to a value that contains it")
            self._aliases_used = True
            return node
        line = self.peek_event().start_mark.line + 1
        node = super().compose_node(parent, index)
        if isinstance(node, MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, ScalarNode):
            children = []
        else:
            children = node.value
        count = 1 + sum(self._expanded.get(id(child), 1) for child in children)
        if count > MAX_VALUES:
            what = "uses YAML aliases that expand to" if self._aliases_used else "has"
            raise YamlRefused(
                f"{what} more than {MAX_VALUES:,} values (at line {line}); a configuration file needs far "
                "fewer, so write the values out"
            )
        self._expanded[id(node)] = count
        return node

    def flatten_mapping(self, node: MappingNode) -> None:
        # Checked once per mapping, before merge keys (<<) copy other mappings' pairs into it:
        # a key there may override a merged one, as YAML intends.
        if id(node) not in self._checked:
            self._checked.add(id(node))
            self._refuse_duplicates(node)
        super().flatten_mapping(node)

    def _refuse_duplicates(self, node: MappingNode) -> None:
        first_seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
                continue
            key = self.construct_object(key_node)
            try:
                first = first_seen.setdefault(key, key_node)
            except TypeError:
                continue
            if first is not key_node:
                raise YamlRefused(
                    f"key {str(key)!r} appears twice, at lines {first.start_mark.line + 1} and "
                    f"{key_node.start_mark.line + 1}; keep one"
                )


def load_yaml(path: Path) -> Any:
    """Parse one configuration file. Raises OSError, UnicodeDecodeError, YamlRefused or
    yaml.YAMLError."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise YamlRefused(f"is over {MAX_FILE_BYTES // (1024 * 1024)} MiB; configuration files are small")
    loader = _ConfigLoader(data.decode("utf-8"))
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
