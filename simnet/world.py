"""A simulated world: clock, topology, network, nodes and what they record."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import simpy

from simnet.codecs import Codec
from simnet.network import Network
from simnet.node import Node
from simnet.topology.graph import Topology


@dataclass(frozen=True)
class LinkEvent:
    """At virtual time ``at`` (seconds) the link between ``a`` and ``b`` goes up or down."""

    at: float
    a: str
    b: str
    up: bool


@dataclass
class MetricRow:
    """One row of ``metrics.csv``: at virtual time ``t`` seconds, ``node``'s ``metric``."""

    t: float
    node: str
    metric: str
    value: float


@dataclass
class World:
    """Everything a workload acts on. ``rng`` is the run's only source of randomness;
    ``codec`` encodes every message payload unless a send names another."""

    topology: Topology
    seed: int = 0
    bandwidth_factor: float = 1.0
    latency_factor: float = 1.0
    codec: Codec = field(default_factory=Codec)
    link_events: list[LinkEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.env = simpy.Environment()
        self.rng = np.random.default_rng(self.seed)
        self.network = Network(self.env, self.topology, self.bandwidth_factor, self.latency_factor)
        self.nodes: dict[str, Node] = {}
        for spec in self.topology.nodes.values():
            self.nodes[spec.id] = Node(self.env, spec, self.network, self.nodes, self.codec)
        self.metrics: list[MetricRow] = []
        for event in sorted(self.link_events, key=lambda e: e.at):
            self.env.timeout(event.at).callbacks.append(
                lambda _, e=event: self.network.set_link(e.a, e.b, e.up)
            )

    def metric(self, node: str, metric: str, value: float) -> None:
        """Record ``metric`` of ``node`` at the current virtual time."""
        self.metrics.append(MetricRow(self.env.now, node, metric, float(value)))
