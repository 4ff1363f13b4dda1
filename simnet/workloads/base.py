"""What every workload provides to the runner."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from simnet.actor import Runtime
from simnet.engine.sim_runtime import SimRuntime
from simnet.engine.world import World
from simnet.topology.graph import Topology


class WorkloadRun(ABC):
    """One run of a workload in a :class:`World`.

    ``advance(n)`` moves the progress bar by ``n`` of ``progress_total`` ``progress_unit``.
    Actors run on ``runtime`` (by default the world's SimPy clock).
    The workload sets ``finished`` when it has done all it set out to do; a run whose
    workload has not finished when the clock stops is incomplete (docs/design.md, rule 7).
    """

    progress_unit = "it"

    def __init__(
        self,
        config: Any,
        world: World,
        advance: Callable[[float], None],
        runtime: Runtime | None = None,
    ) -> None:
        self.config = config
        self.world = world
        self.advance = advance
        self.runtime = runtime or SimRuntime(world)
        self.finished = False
        self.finished_at: float | None = None
        """Virtual time (s) at which the workload finished."""
        self.main_node: str | None = None
        """The node whose process of a live run reports the workload's summary (``None``:
        the summary needs no node's state)."""

    @abstractmethod
    def start(self) -> None:
        """Start the workload's actors on ``runtime``."""

    @property
    @abstractmethod
    def progress_total(self) -> float:
        """How many progress units a complete run advances."""

    @property
    def until(self) -> float | None:
        """Virtual time in seconds to stop at, or ``None`` to run until no event is left."""
        return None

    @abstractmethod
    def summary(self) -> dict[str, Any]:
        """Headline figures of this workload for ``summary.json`` (also of an incomplete
        run: whatever was reached)."""

    @property
    def largest_message_bytes(self) -> int | None:
        """Bytes of the largest message the workload will send, where it knows them before
        it starts (bounds a live run's receivers); ``None``: unknown."""
        return None

    def tables(self) -> dict[str, str]:
        """Extra files of the run directory, name → text (default: none)."""
        return {}

    def live_part(self) -> dict[str, Any]:
        """What one process of a live run reports for :meth:`combine`: its summary."""
        return self.summary()

    @staticmethod
    def combine(parts: list[dict[str, Any]], main: int, owner: dict[str, int]) -> dict[str, Any]:
        """A live run's summary from the :meth:`live_part` of every process (``parts``);
        ``main`` is the index of the process hosting :attr:`main_node`, ``owner`` maps node
        ids to the index of the process hosting them. Default: the main process's."""
        return dict(parts[main])

    def finish(self, _: Any = None) -> None:
        """Mark the workload finished now (usable as a SimPy callback)."""
        if not self.finished:
            self.finished, self.finished_at = True, self.runtime.now
            self.world.done = True


Check = Callable[[Any, Topology, str, int, bool], None]
"""``check(config, topology, source, seed, faulty)``: every check a run needs, raising
:class:`~simnet.errors.InputError`; ``faulty`` says whether the scenario injects faults."""


@dataclass(frozen=True)
class WorkloadKind:
    """A workload as the scenario loader sees it: its config model, checks and runner."""

    Config: type[BaseModel]
    check: Check
    Run: type[WorkloadRun]


def by_owner(
    parts: list[dict[str, Any]], main: int, owner: dict[str, int], keys: tuple[str, ...]
) -> dict[str, Any]:
    """``parts[main]`` with each node's entry of the node-keyed dicts ``keys`` taken from
    the part of the process that hosts the node."""
    out = dict(parts[main])
    for key in keys:
        out[key] = {node: parts[owner[node]][key][node] for node in out[key]}
    return out


def summed(counts: Iterable[dict[str, float]]) -> dict[str, float]:
    """Key-wise sums of ``counts``, keys sorted."""
    total: dict[str, float] = {}
    for count in counts:
        for key, value in count.items():
            total[key] = total.get(key, 0) + value
    return dict(sorted(total.items()))
