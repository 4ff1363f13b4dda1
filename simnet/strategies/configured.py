"""The strategy a scenario field names: a built-in by name, or the user's ``module:Class``
(built with the field's options and guarded, so that its exceptions name it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from simnet.config.origin import Origin
from simnet.config.plugins import guarded, is_reference, load_class
from simnet.errors import InputError
from simnet.strategies import BUILTINS
from simnet.strategies.base import State, Strategy, Update


class Guarded(Strategy):
    """A user's strategy whose every call turns an exception into a
    :class:`~simnet.errors.PluginError` naming ``field`` and ``ref``."""

    def __init__(self, inner: Strategy, field: str, ref: str) -> None:
        self.inner, self.field, self.ref = inner, field, ref

    def _call(self, method: str, *args: Any) -> Any:
        return guarded(self.field, self.ref, getattr(self.inner, method), *args)

    @property
    def buffer(self) -> int:  # type: ignore[override]
        return self.inner.buffer

    def aggregate(self, current: State, updates: Sequence[Update]) -> State:
        return self._call("aggregate", current, updates)

    def select(self, round: int, clients: list[str], rng: np.random.Generator) -> list[str]:  # noqa: A002
        return self._call("select", round, clients, rng)

    def on_round_end(self, round: int, state: State) -> None:  # noqa: A002
        self._call("on_round_end", round, state)

    def on_client(self, node: str, weight: float) -> None:
        self._call("on_client", node, weight)

    def flops(self, parameters: int, updates: int) -> int:
        return int(self._call("flops", parameters, updates))

    def metrics(self) -> dict[str, Any]:
        return dict(self._call("metrics"))


def configured(
    spec: str, options: Mapping[str, Any], origin: Origin, field: str,
    builtin: Mapping[str, Mapping[str, Any]] | None = None,
) -> Strategy:  # fmt: skip
    """The strategy ``spec`` names at ``field``: ``BUILTINS[spec](**builtin[spec], **options)``
    or ``Class(**options)`` for ``module:Class``."""
    if is_reference(spec):
        _, cls = load_class(spec, origin, field, Strategy)
        return Guarded(guarded(field, spec, cls, **options), field, spec)
    if spec not in BUILTINS:
        known = ", ".join(BUILTINS)
        message = f"must be one of {known} or module:Class (got {spec!r})"
        raise InputError(origin.source, field, message)
    try:
        return BUILTINS[spec](**{**(builtin or {}).get(spec, {}), **options})
    except TypeError as exc:
        raise InputError(origin.source, f"{field}_options", str(exc)) from None


def with_settings(
    strategy: Strategy,
    clients_per_round: int | None = None,
    fraction: float | None = None,
    buffer: int | None = None,
) -> Strategy:
    """``strategy`` with the scenario's sampling (``clients_per_round`` or ``fraction``) and
    ``buffer`` set where given."""
    inner = strategy.inner if isinstance(strategy, Guarded) else strategy
    settings = {"clients_per_round": clients_per_round, "fraction": fraction, "buffer": buffer}
    for name, value in settings.items():
        if value is not None:
            setattr(inner, name, value)
    return strategy
