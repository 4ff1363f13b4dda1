"""Reading user files (UTF-8 text, YAML) with one-line errors; writing YAML fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from simnet.errors import InputError

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
"""libyaml's emitter where PyYAML has it (the same text, a few times faster)."""
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser where PyYAML has it (what ``yaml.safe_load`` reads, several times
faster: a run's ``scenario.yaml`` with a 100,000-node topology inline). Files people
write are read with the pure-Python parser, whose error messages are clearer."""


def dump_yaml(data: Any) -> str:
    """``data`` as YAML text, keys in their order (what ``yaml.safe_dump`` writes)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)


def load_yaml(text: str) -> Any:
    """The data of YAML ``text`` that simnet wrote (a run's or a sweep's files), as
    ``yaml.safe_load`` reads it (``yaml.YAMLError`` if malformed)."""
    return yaml.load(text, Loader=_Loader)


def read_text(path: Path, source: str | None = None, field: str = "") -> str:
    """The text of the user file ``path``, which must be UTF-8.

    A file that cannot be read or is not UTF-8 raises :class:`InputError` from ``source``
    and ``field`` (the message then names the file), by default from the file itself.
    Newlines are kept as they are in the file (as ``open(..., newline="")`` reads them).
    """
    path = Path(path)
    named = "" if source is None else f"{path.name}: "
    source = str(path) if source is None else source
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(source, field, f"{named}cannot read: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        where = f"byte 0x{data[exc.start]:02x} at offset {exc.start}, line {line}"
        raise InputError(source, field, f"{named}not UTF-8 text ({where})") from None


def read_yaml(path: Path, what: str = "file") -> Any:
    """Parse a YAML file; a missing, unreadable, non-UTF-8 or malformed file raises
    :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "", f"{what} not found")
    text = read_text(path)
    try:
        return yaml.safe_load(text)  # the pure-Python parser: its messages are clearer
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start:
            problem += f" ({context} started at line {start.line + 1})"
        raise InputError(str(path), "", f"invalid YAML{where}: {problem}") from None
