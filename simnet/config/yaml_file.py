"""Reading user YAML files with one-line errors; writing YAML fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from simnet.errors import InputError

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
"""libyaml's emitter where PyYAML has it (the same text, a few times faster)."""


def dump_yaml(data: Any) -> str:
    """``data`` as YAML text, keys in their order (what ``yaml.safe_dump`` writes)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)


def read_yaml(path: Path, what: str = "file") -> Any:
    """Parse a YAML file; a missing or malformed file raises :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "", f"{what} not found")
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start:
            problem += f" ({context} started at line {start.line + 1})"
        raise InputError(str(path), "", f"invalid YAML{where}: {problem}") from None
