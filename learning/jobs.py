"""A learning job described by value, so that any executor can run it.

A job is ``owner.method(*args)``: ``owner`` is the learning object that plans it (a
:class:`~learning.federated.Learner`), ``args`` are tensors, states, data splits and a
seed — everything the step depends on — and ``flops`` is its work, counted before it runs
(docs/design.md, rule 4: the simulator charges the compute time from it and may run the
step ahead of the clock, on another core or machine). An owner is rebuilt from a small
recipe where it is pickled (its ``__reduce__``), never shipped as modules.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Job:
    """``owner.method(*args)`` with ``flops`` FLOPs of work; a pure function of ``args``
    (randomness comes from a seed among them)."""

    owner: Any
    method: str
    args: tuple[Any, ...]
    flops: int
    local: bool = False
    """Run it where it is asked for, whatever the executor: a step of a few FLOPs per
    element it reads (averaging, mixing) costs less to run than to ship."""
    batch: str | None = None
    """The owner's method that runs many such jobs at once, given the lists of their
    arguments position by position (``None``: not batchable)."""
    group: Hashable = None
    """Jobs of one owner, ``batch`` and ``group`` can run together."""

    def run(self) -> Any:
        """Run the job here, on ``owner`` itself."""
        return getattr(self.owner, self.method)(*self.args)
