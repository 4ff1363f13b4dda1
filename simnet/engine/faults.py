"""Faults a scenario can inject: node crashes and recoveries, end-device drop-out per
round, a crash trace, availability (simnet.engine.availability), and the retry policy
senders apply to dropped messages.

docs/faults.md states the rules; here are the ``faults:`` fields and their checks::

    faults:
      nodes: [{node: edge1, at: 300, state: down}, {node: edge1, at: 420, state: up}]
      dropout: {tier: end, probability: 0.2}     # per device and round, from the seed
      trace: crashes.csv                         # node,t_down,t_up (t_up empty: never)
      availability: online.csv                   # node,start_s,end_s (simnet.engine.availability)
      retry: {timeout_s: 1.0, attempts: 6}       # resend after 1, 2, 4, … s, at most 6 times
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from simnet.config.yaml_file import read_text
from simnet.engine.availability import MarkovAvailabilityConfig
from simnet.engine.trace_cells import seconds
from simnet.errors import InputError
from simnet.topology.graph import Topology

DROPOUT_STREAM = 0xD809
"""Tag of the random stream of drop-out draws (keeps them apart from other draws)."""


class NodeEventConfig(BaseModel):
    """``{node, at, state}``: at ``at`` seconds ``node`` goes ``down`` (crashes) or ``up``."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    node: str
    at: float = Field(ge=0)
    state: Literal["up", "down"]


class DropoutConfig(BaseModel):
    """Each device of ``tier`` sits out each round with ``probability``."""

    model_config = ConfigDict(extra="forbid")

    tier: Literal["end"] = "end"
    probability: float = Field(ge=0, le=1)


class RetryConfig(BaseModel):
    """A dropped message that the protocol retries is sent again ``timeout_s`` seconds
    later, then after twice that, and so on, at most ``attempts`` times."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(default=1.0, gt=0)
    attempts: int = Field(default=6, ge=0)

    def delays(self) -> list[float]:
        """Seconds to wait before each resend: ``timeout_s · 2^k``, k = 0 … attempts − 1."""
        return [self.timeout_s * 2**k for k in range(self.attempts)]


class FaultsConfig(BaseModel):
    """``faults`` of a scenario (see the module doc)."""

    model_config = ConfigDict(extra="forbid")

    nodes: list[NodeEventConfig] = Field(default_factory=list)
    dropout: DropoutConfig | None = None
    trace: str | None = None
    availability: str | MarkovAvailabilityConfig | None = None
    retry: RetryConfig = Field(default_factory=RetryConfig)


@dataclass(frozen=True)
class NodeEvent:
    """At virtual time ``at`` (seconds) ``node`` goes down or comes back up."""

    at: float
    node: str
    up: bool


@dataclass(frozen=True)
class Dropout:
    """Drop-out draws: device ``node`` of ``tier`` sits out round ``r`` when
    u(seed, node, r) < ``probability``, u uniform on [0, 1) from its own random stream, so
    a draw depends on nothing but the seed, the node's index and the round."""

    tier: str
    probability: float
    seed: int

    def sits_out(self, node_index: int, round_: int) -> bool:
        if self.probability <= 0:
            return False
        key = [DROPOUT_STREAM, self.seed % 2**63, node_index, round_]
        return bool(np.random.default_rng(key).random() < self.probability)


def read_trace(path: Path, source: str, topology: Topology) -> list[NodeEvent]:
    """The events of an availability trace: CSV ``node,t_down,t_up`` (seconds; an empty
    ``t_up`` means the node never comes back)."""
    field = "faults.trace"
    if not path.is_file():
        raise InputError(source, field, f"file not found: {path}")
    rows = list(csv.DictReader(io.StringIO(read_text(path, source, field), newline="")))
    events = []
    for line, row in enumerate(rows, start=2):
        where = f"{path.name} line {line}"
        node = (row.get("node") or "").strip()
        if node not in topology.nodes:
            raise InputError(source, field, f"{where}: unknown node {node!r}")
        down = seconds(row.get("t_down"), source, field, f"{where}, t_down")
        up_text = (row.get("t_up") or "").strip()
        if down is None:
            raise InputError(source, field, f"{where}: t_down is required")
        events.append(NodeEvent(down, node, False))
        if up_text:
            up = seconds(up_text, source, field, f"{where}, t_up")
            if up is None or up <= down:
                raise InputError(source, field, f"{where}: t_up must be after t_down")
            events.append(NodeEvent(up, node, True))
    return events


def node_events(
    config: FaultsConfig, topology: Topology, source: str, base_dir: Path
) -> list[NodeEvent]:
    """Every node event of ``config`` (listed and traced), checked, in time order."""
    events = []
    for i, event in enumerate(config.nodes):
        if event.node not in topology.nodes:
            raise InputError(source, f"faults.nodes.{i}.node", f"unknown node {event.node!r}")
        events.append(NodeEvent(event.at, event.node, event.state == "up"))
    if config.trace is not None:
        events += read_trace(base_dir / config.trace, source, topology)
    for event in events:
        if topology.nodes[event.node].tier == "cloud":
            raise InputError(
                source, "faults", f"crashing the cloud ({event.node}) is not modelled; "
                "crash edges or end devices",
            )  # fmt: skip
    return sorted(events, key=lambda e: e.at)
