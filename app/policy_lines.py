"""Where in policy.yml a validation error is: the line of the YAML node a pydantic error path
reaches, and the path written as people read it (`systems[0].roles[1].grant`). Used for the
message that stops start-up (the first error) and by `prod-access policy check` (all of them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


def describe_error(path: Path, root: yaml.Node | None, exc: ValidationError) -> str:
    """The first validation error as `file:line: key.path: reason`."""
    line, key, reason = located_errors(root, exc)[0]
    return f"{path}:{line}: {key}: {reason}"


def located_errors(root: yaml.Node | None, exc: ValidationError) -> list[tuple[int, str, str]]:
    """Every validation error as (line, key path, reason), in pydantic's order."""
    located = []
    for error in exc.errors():
        loc = [part for part in error["loc"] if not str(part).startswith("function-")]
        reason = str(error["msg"]).removeprefix("Value error, ")
        located.append((line_of(root, loc), key_path(loc) or "(top level)", reason))
    return located


def line_of(root: yaml.Node | None, loc: list[Any]) -> int:
    """The 1-based line of the deepest node that `loc` reaches in the YAML tree."""
    node, line = root, (root.start_mark.line + 1 if root else 1)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
            key = next((k for k, _ in node.value if k.value == str(part)), None)
            if match is None:
                break
            line, node = key.start_mark.line + 1, match  # type: ignore[union-attr]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def key_path(loc: list[Any]) -> str:
    """`systems[0].roles[1].grant` for the path ['systems', 0, 'roles', 1, 'grant']."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
