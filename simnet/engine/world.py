"""A simulated world: clock, topology, network, nodes, faults and what they record."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import simpy

from simnet.engine.availability import Availability, Transition
from simnet.engine.faults import Dropout, NodeEvent, RetryConfig
from simnet.engine.network import Network
from simnet.engine.node import Machine
from simnet.engine.sharing import Sharing
from simnet.topology.graph import Topology
from simnet.wire.codecs import Codec

STALL_EVENTS = 1_000_000
"""Events processed at one virtual instant after which the clock counts as stalled."""


COUNTED = {"crash": ("crash", "recovery"), "availability": ("offline", "online")}
"""What a node going down (index 0) or up (1) is counted as, by cause."""


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
    ``codec`` encodes every message payload unless a send names another.

    Faults: ``link_events`` and ``node_events`` happen at their times, ``availability``
    takes devices offline and back (each change scheduled when the one before happens,
    none once the workload is ``done``), ``dropout`` says which devices sit out which
    rounds, ``retry`` is the senders' policy for dropped messages; ``faults`` counts what
    happened (crashes, going offline, drop-outs, retries, …). A node is up while neither
    a crash nor its availability holds it down.
    """

    topology: Topology
    seed: int = 0
    bandwidth_factor: float = 1.0
    latency_factor: float = 1.0
    sharing: Sharing = field(default_factory=Sharing)
    codec: Codec = field(default_factory=Codec)
    link_events: list[LinkEvent] = field(default_factory=list)
    node_events: list[NodeEvent] = field(default_factory=list)
    availability: Availability | None = None
    dropout: Dropout | None = None
    retry: RetryConfig = field(default_factory=RetryConfig)

    def __post_init__(self) -> None:
        self.env = simpy.Environment()
        self.rng = np.random.default_rng(self.seed)
        self.network = Network(
            self.env, self.topology, self.bandwidth_factor, self.latency_factor, self.sharing
        )
        self.nodes: dict[str, Machine] = {}
        for spec in self.topology.nodes.values():
            self.nodes[spec.id] = Machine(self.env, spec, self.network, self.nodes, self.codec)
        self.metrics: list[MetricRow] = []
        self.faults: Counter[str] = Counter()
        self._index = {node: i for i, node in enumerate(self.topology.nodes)}
        self._held: dict[str, set[str]] = {node: set() for node in self.nodes}
        self.done = False
        """Set when the workload finished: availability changes no more."""
        for event in sorted(self.link_events, key=lambda e: e.at):
            self.env.timeout(event.at).callbacks.append(
                lambda _, e=event: self.network.set_link(e.a, e.b, e.up)
            )
        for node_event in sorted(self.node_events, key=lambda e: e.at):
            self.env.timeout(node_event.at).callbacks.append(
                lambda _, e=node_event: self.set_node(e.node, e.up)
            )
        if self.availability is not None:
            for node in self.availability.nodes:
                self._next_change(node, self.availability.transitions(node))

    def metric(self, node: str, metric: str, value: float) -> None:
        """Record ``metric`` of ``node`` at the current virtual time."""
        self.metrics.append(MetricRow(self.env.now, node, metric, float(value)))

    def count(self, node: str, what: str) -> None:
        """Count one fault-related event ``what`` (``crash``, ``retry``, …) at ``node``;
        it is also a ``metrics.csv`` row of value 1."""
        self.faults[what] += 1
        self.metric(node, what, 1)

    def set_node(self, node: str, up: bool, cause: str = "crash") -> None:
        """Crash ``node`` or bring it back now (``cause`` ``crash``), or take it offline
        or online (``cause`` ``availability``): counted as ``crash``/``recovery`` or
        ``offline``/``online``; the node goes down with its first cause and comes up
        with its last (network first, then its actors)."""
        held = self._held[node]
        if up == (cause not in held):
            return
        if up:
            held.discard(cause)
        else:
            held.add(cause)
        self.count(node, COUNTED[cause][up])
        target = self.nodes[node]
        if target.up == (not held):
            return
        self.network.set_node(node, not held)
        if held:
            target.crash()
        else:
            target.recover()

    def online(self, node: str) -> bool:
        """Whether ``node``'s availability has it online now (a crash is no matter)."""
        return "availability" not in self._held[node]

    def _next_change(self, node: str, changes: Iterator[Transition]) -> None:
        """Schedule ``node``'s next availability change, unless there is none or the
        workload is done; one at the current instant happens at once (so a device
        offline from 0 s starts no actor)."""
        change = next(changes, None)
        if change is None or self.done:
            return
        at, up = change
        if at <= self.env.now:
            self.set_node(node, up, "availability")
            self._next_change(node, changes)
            return

        def apply(_: simpy.Event) -> None:
            if not self.done:
                self.set_node(node, up, "availability")
                self._next_change(node, changes)

        self.env.timeout(at - self.env.now).callbacks.append(apply)

    def sits_out(self, node: str, round_: int) -> bool:
        """Whether device ``node`` drops out of round ``round_`` (counted when it does)."""
        dropout = self.dropout
        if dropout is None or self.topology.nodes[node].tier != dropout.tier:
            return False
        if dropout.sits_out(self._index[node], round_):
            self.count(node, "dropout")
            return True
        return False

    def run(
        self, until: float | None = None, idle: bool = False, stall_events: int = STALL_EVENTS
    ) -> str | None:
        """Process events until none is left or the next is later than ``until`` seconds
        (with ``idle``, the clock then moves on to ``until``, as SimPy's ``run(until)``).
        Returns ``None``, or why the clock stopped early: it stalled (more than
        ``stall_events`` events at one instant)."""
        env = self.env
        limit = float("inf") if until is None else until
        instant, events = env.now, 0
        while (next_t := env.peek()) < float("inf") and next_t <= limit:
            env.step()
            if env.now == instant:
                events += 1
                if events > stall_events:
                    return f"the clock stalled at t = {env.now!r} s ({events:,} events)"
            else:
                instant, events = env.now, 0
        if idle and until is not None and env.now < until:
            env.run(until=until)
        return None

    def waiting(self) -> list[str]:
        """Who waits for what, one phrase per waiting receive (nodes in topology order)."""
        out = []
        for node in self.nodes.values():
            state = "" if node.up else f" (down since {node.down_since:.6g} s)"
            out += [f"{node.id}{state} waited for {what}" for what in node.waiting()]
        return out
