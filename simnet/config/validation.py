"""Turn pydantic validation failures into one-line :class:`InputError` s."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from simnet.errors import InputError

M = TypeVar("M", bound=BaseModel)


_UNION_TAGS = {"int", "float", "str", "bool", "list", "dict", "none"}


def _is_union_tag(item: Any) -> bool:
    """Whether a location item names a union member rather than a field.

    pydantic puts the member it tried into error locations: a type name (``int``), a model
    class name (``SizeRange``) or a validator label (``function-after[...]``). Our field
    names are lower case and never plain type names.
    """
    text = str(item)
    return isinstance(item, str) and (
        text in _UNION_TAGS or text[:1].isupper() or ("[" in text and "]" in text)
    )


def field_path(loc: tuple[Any, ...], prefix: str = "") -> str:
    """Dotted path of a pydantic error location, without union-member tags."""
    parts = [prefix] if prefix else []
    parts += [str(item) for item in loc if not _is_union_tag(item)]
    return ".".join(parts)


def describe(error: dict[str, Any]) -> str:
    """A short message for one pydantic error, with the offending value when useful."""
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    message = message[0].lower() + message[1:] if message else message
    value = error.get("input")
    if kind not in ("model_type", "dict_type", "list_type") and not isinstance(value, dict | list):
        message += f" (got {value!r})"
    return message


def to_input_error(exc: ValidationError, source: str, prefix: str = "") -> InputError:
    """The most telling error of ``exc`` as an :class:`InputError`.

    When a value matches no member of a union, the member whose own checks failed says
    more than the members of the wrong type, so type mismatches come last.
    """
    errors = exc.errors()
    first = min(errors, key=lambda e: e["type"].endswith(("_type", "_parsing")))
    return InputError(source, field_path(first["loc"], prefix), describe(first))


def non_finite(data: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Paths of the non-finite floats (``inf``, ``nan``) anywhere in ``data``."""
    if isinstance(data, float) and not math.isfinite(data):
        yield path
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from non_finite(value, (*path, str(key)))
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            yield from non_finite(value, (*path, str(i)))


def parse(model: type[M], data: Any, source: str, prefix: str = "") -> M:
    """Validate ``data`` against ``model``; user mistakes become :class:`InputError`.

    Non-finite numbers are bad input wherever they appear (docs/design.md, rule 6), including
    text such as ``"inf"`` that a field turned into a float.
    """
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise to_input_error(exc, source, prefix) from None
    for path in non_finite(parsed.model_dump()):
        value = _lookup(data, path)
        raise InputError(
            source, field_path(path, prefix), f"must be a finite number (got {value!r})"
        )
    return parsed


def _lookup(data: Any, path: tuple[str, ...]) -> Any:
    """The raw value at ``path`` of ``data`` as the user wrote it (else ``inf``/``nan``)."""
    for key in path:
        try:
            data = data[int(key)] if isinstance(data, list | tuple) else data[key]
        except (KeyError, IndexError, TypeError, ValueError):
            return "a non-finite number"
    return data
