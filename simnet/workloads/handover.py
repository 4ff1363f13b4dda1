"""A value a workload's check built (a dataset, a data plan), kept for the run of the
same config: a run loads its data once, and checking many scenarios (a sweep's points)
holds one value at most."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Handover(Generic[T]):
    """Holds the latest checked value with the config object and settings key it was
    built for, until a run of that same config object and key takes it."""

    def __init__(self) -> None:
        self._held: tuple[Any, Hashable, T] | None = None

    def clear(self) -> None:
        """Drop what is held (before a check builds the next value)."""
        self._held = None

    def keep(self, config: Any, key: Hashable, value: T) -> None:
        """Hold ``value``, built for ``config`` with settings ``key``."""
        self._held = (config, key, value)

    def take(self, config: Any, key: Hashable, build: Callable[[], T]) -> T:
        """The value held for ``config`` and ``key`` (no longer held), else ``build()``."""
        held, self._held = self._held, None
        if held is not None and held[0] is config and held[1] == key:
            return held[2]
        return build()
