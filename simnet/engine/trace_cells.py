"""A time cell of a fault trace file (CSV rows of ``faults.trace`` and
``faults.availability``): seconds, finite and not negative."""

from __future__ import annotations

import math

from simnet.errors import InputError


def seconds(text: str | None, source: str, field: str, where: str) -> float | None:
    """``text`` as seconds, ``None`` if empty; else a one-line error under ``field`` that
    starts with ``where`` (the file, row and column)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(source, field, f"{where}: not a number ({text!r})") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(source, field, f"{where}: must be finite and >= 0")
    return value
