"""Availability: when each device is online, from a trace file or a seeded on/off chain
(docs/faults.md, "Availability").

``faults.availability`` is either a CSV file of online intervals::

    node,start_s,end_s        # seconds; an empty end_s: online until the run ends
    end0,0,120
    end0,300,

(a node with no row is always online), or ``{kind: markov, mean_on_s, mean_off_s,
nodes}``: each of ``nodes`` (a tier name or a list of ids) alternates online and offline
periods drawn from exponential distributions of those means, from a random stream of
its own (seed, node index), starting online with probability on / (on + off).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from simnet.config.yaml_file import read_text
from simnet.engine.trace_cells import seconds
from simnet.errors import InputError
from simnet.topology.graph import TIERS, Topology

AVAILABILITY_STREAM = 0xA7A1
"""Tag of the random stream of availability periods (apart from every other draw)."""

FIELD = "faults.availability"
COLUMNS = ("node", "start_s", "end_s")


class MarkovAvailabilityConfig(BaseModel):
    """``{kind: markov, mean_on_s, mean_off_s, nodes}`` (see the module doc)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["markov"]
    mean_on_s: float = Field(gt=0, allow_inf_nan=False)
    mean_off_s: float = Field(gt=0, allow_inf_nan=False)
    nodes: str | list[str] = "end"


Transition = tuple[float, bool]
"""At virtual time t (s) the node goes online (True) or offline (False)."""


@dataclass(frozen=True)
class Availability:
    """Who is online when: ``intervals`` (node → sorted, disjoint online intervals in
    seconds) for a trace, or ``markov`` periods for ``chained`` nodes."""

    intervals: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    markov: MarkovAvailabilityConfig | None = None
    chained: tuple[str, ...] = ()
    seed: int = 0
    index: dict[str, int] = field(default_factory=dict)

    @property
    def nodes(self) -> list[str]:
        """The nodes whose availability varies, in topology order."""
        return sorted([*self.intervals, *self.chained], key=self.index.__getitem__)

    def transitions(self, node: str) -> Iterator[Transition]:
        """``node``'s changes of state in time order (lazy: a chain never ends)."""
        if node in self.intervals:
            return _changes(self.intervals[node])
        return self._chain(node)

    def _chain(self, node: str) -> Iterator[Transition]:
        assert self.markov is not None
        on, off = self.markov.mean_on_s, self.markov.mean_off_s
        rng = np.random.default_rng([AVAILABILITY_STREAM, self.seed % 2**63, self.index[node]])
        online = bool(rng.random() < on / (on + off))
        t = 0.0
        if not online:
            yield 0.0, False
        while True:
            t += float(rng.exponential(on if online else off))
            online = not online
            yield t, online


def _changes(intervals: list[tuple[float, float]]) -> Iterator[Transition]:
    """The transitions of a node (online when the run starts) that is online exactly in
    ``intervals`` (sorted, disjoint; touching ones join)."""
    wanted: list[Transition] = []
    t = 0.0
    for start, end in intervals:
        if start > t:
            wanted.append((t, False))
        wanted.append((start, True))
        t = end
    if math.isfinite(t):
        wanted.append((t, False))
    online = True
    for at, state in wanted:
        if state != online:
            online = state
            yield at, state


def read_availability(
    spec: str | MarkovAvailabilityConfig | None,
    topology: Topology,
    source: str,
    base_dir: Path,
    seed: int,
) -> Availability | None:
    """The :class:`Availability` of ``spec`` (a CSV path relative to ``base_dir``, or a
    chain), checked; ``None`` without one. Errors name the file, row and field."""
    if spec is None:
        return None
    index = {node: i for i, node in enumerate(topology.nodes)}
    if isinstance(spec, MarkovAvailabilityConfig):
        names = spec.nodes
        if isinstance(names, str):
            if names not in TIERS:
                raise InputError(source, f"{FIELD}.nodes", f"must be a tier ({', '.join(TIERS)}) "
                                 f"or a list of node ids (got {names!r})")  # fmt: skip
            chained = topology.nodes_in_tier(names)
        else:
            chained = list(names)
            for i, node in enumerate(chained):
                if node not in topology.nodes:
                    raise InputError(source, f"{FIELD}.nodes.{i}", f"unknown node {node!r}")
        for node in chained:
            _not_cloud(node, topology, source)
        return Availability(markov=spec, chained=tuple(chained), seed=seed, index=index)
    path = base_dir / spec
    if not path.is_file():
        raise InputError(source, FIELD, f"file not found: {path}")
    reader = csv.DictReader(io.StringIO(read_text(path, source, FIELD), newline=""))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(source, FIELD, f"{path.name}: needs the columns {', '.join(COLUMNS)} "
                         f"(missing {', '.join(missing)})")  # fmt: skip
    rows: dict[str, list[tuple[float, float, int]]] = {}
    for line, row in enumerate(reader, start=2):
        where = f"{path.name} row {line}"
        node = (row["node"] or "").strip()
        if node not in topology.nodes:
            raise InputError(source, FIELD, f"{where}, node: unknown node {node!r}")
        _not_cloud(node, topology, source)
        start = seconds(row["start_s"], source, FIELD, f"{where}, start_s")
        if start is None:
            raise InputError(source, FIELD, f"{where}, start_s: required")
        end = seconds(row["end_s"], source, FIELD, f"{where}, end_s")
        end = math.inf if end is None else end
        if end <= start:
            raise InputError(source, FIELD, f"{where}, end_s: must be after start_s ({start:g})")
        rows.setdefault(node, []).append((start, end, line))
    intervals = {}
    for node, spans in rows.items():
        spans.sort()
        for (_, end, first), (start, _, line) in zip(spans, spans[1:], strict=False):
            if start < end:
                raise InputError(source, FIELD, f"{path.name} row {line}, start_s: {node}'s "
                                 f"interval overlaps the one of row {first}")  # fmt: skip
        intervals[node] = [(s, e) for s, e, _ in spans]
    return Availability(intervals=intervals, seed=seed, index=index)


def _not_cloud(node: str, topology: Topology, source: str) -> None:
    if topology.tier(node) == "cloud":
        raise InputError(source, FIELD, f"taking the cloud ({node}) offline is not modelled")
