"""Reading a study file safely: a bounded read of a regular file, then YAML with YAML 1.2
numbers, no duplicate keys and bounded alias expansion.

* Only a regular file is read (a FIFO, ``/dev/zero`` or a directory is refused without being
  opened for reading), and at most :data:`MAX_FILE_BYTES` of it.
* ``1e-4`` is a float, as YAML 1.2 says (PyYAML's YAML 1.1 rules read it as a string).
* A key given twice in one mapping is an error naming the key and its line (PyYAML keeps the
  last one silently).
* Aliases (``*name``) are limited to :data:`MAX_ALIASES`, and the document expanded as a tree
  to :data:`MAX_NODES` values, so an alias bomb is refused before anything walks or prints it.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from hpsearch.errors import ConfigError

MAX_FILE_BYTES = 1_000_000
MAX_ALIASES = 100
MAX_NODES = 10_000

# YAML 1.2 core schema floats: 1e-4, 1.5, .5, -2E+3, .inf, .nan (1.1's rule needs a dot).
_FLOAT_12 = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class StudyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 floats, duplicate keys refused and aliases counted."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise ConfigError(f"more than {MAX_ALIASES} aliases (line {mark.line + 1}); a study file needs none")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
                seen[key] = line
            except TypeError:  # an unhashable key: let PyYAML report it
                continue
            if first is not None:
                raise ConfigError(f"duplicate key {short_repr(key)} (line {line}; first on line {first})")
        return super().construct_mapping(node, deep=deep)


StudyLoader.yaml_implicit_resolvers = {k: [r for r in v if r[0] != "tag:yaml.org,2002:float"]
                                       for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
StudyLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _count_nodes(data: Any, limit: int) -> int:
    """Values in ``data`` expanded as a tree, counting up to just past ``limit``."""
    count, stack = 0, [data]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def load_yaml(text: str) -> Any:
    """Parse study YAML (see the module doc); raises :class:`ConfigError` or ``yaml.YAMLError``."""
    loader = StudyLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    if _count_nodes(data, MAX_NODES) > MAX_NODES:
        raise ConfigError(f"the document expands to more than {MAX_NODES} values (aliases); a study file needs a few dozen")
    return data


def read_study_text(path: str | Path) -> str:
    """The text of a regular file of at most :data:`MAX_FILE_BYTES`, as UTF-8."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: study file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read study file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path}: not a regular file; a study file is a YAML file")
    if info.st_size > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: {info.st_size} bytes; a study file is at most {MAX_FILE_BYTES} bytes")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # replaced since the stat
                raise ConfigError(f"{path}: not a regular file; a study file is a YAML file")
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read study file: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: more than {MAX_FILE_BYTES} bytes; a study file is at most {MAX_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot read study file: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
