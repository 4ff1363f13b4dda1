"""The ``traffic`` workload: byte transfers only, to study the network on its own.

Transfers are listed explicitly (``transfers``), generated (``generate``), or both.
Generated transfers arrive as a Poisson process of ``rate_per_s`` transfers per second
from ``start`` seconds on; sizes are fixed or uniform integers in ``[min, max]`` bytes.
Traffic messages carry no tensors: each is charged exactly its declared size.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simnet.actor import DELIVERED, Delivery
from simnet.config.origin import Origin
from simnet.errors import InputError
from simnet.report.summary import time_stats
from simnet.topology.graph import Topology
from simnet.topology.routing import NoRouteError
from simnet.workloads.base import WorkloadRun

ENVELOPE_SLACK = 4096
"""Bytes a message's envelope may add beyond its declared size (it rides inside it
unless the declared size is smaller)."""


class TransferConfig(BaseModel):
    """``{src, dst, bytes, at, kind}``: send ``bytes`` bytes at ``at`` seconds."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    src: str
    dst: str
    bytes: int = Field(ge=0)
    at: float = Field(default=0.0, ge=0)
    kind: str = "data"


class SizeRange(BaseModel):
    """Uniform integer sizes in ``[min, max]`` bytes."""

    model_config = ConfigDict(extra="forbid")

    min: int = Field(ge=0)
    max: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> SizeRange:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        return self


class GeneratorConfig(BaseModel):
    """Generated transfers.

    ``all_to_one``: every source sends to ``dst`` (default: the first cloud node), sources
    taken in turn. ``random_pairs``: source and destination drawn uniformly, never equal.
    Sources are the nodes of ``source_tier`` (default: every node but ``dst``).
    """

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    pattern: Literal["all_to_one", "random_pairs"]
    count: int = Field(ge=1)
    size_bytes: int | SizeRange
    rate_per_s: float = Field(gt=0)
    start: float = Field(default=0.0, ge=0)
    dst: str | None = None
    source_tier: Literal["end", "edge", "cloud"] | None = None
    kind: str = "data"

    @model_validator(mode="after")
    def _positive_size(self) -> GeneratorConfig:
        if isinstance(self.size_bytes, int) and self.size_bytes < 0:
            raise ValueError(f"size_bytes must be >= 0 (got {self.size_bytes})")
        return self


class TrafficConfig(BaseModel):
    """``workload`` of kind ``traffic``; ``until`` (seconds) stops the run early."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["traffic"]
    transfers: list[TransferConfig] = Field(default_factory=list)
    generate: GeneratorConfig | None = None
    until: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _something_to_send(self) -> TrafficConfig:
        if not self.transfers and self.generate is None:
            raise ValueError("give transfers, generate, or both")
        return self


def _check_pair(topology: Topology, src: str, dst: str, source: str, field: str) -> None:
    for end, node in (("src", src), ("dst", dst)):
        if node not in topology.nodes:
            raise InputError(source, f"{field}.{end}", f"unknown node {node!r}")
    try:
        topology.path(src, dst)
    except NoRouteError as exc:
        raise InputError(source, f"{field}.dst", f"unreachable: {exc}") from None


def _endpoints(gen: GeneratorConfig, topology: Topology) -> tuple[str | None, list[str]]:
    """Destination (``None`` for random pairs) and candidate sources of a generator."""
    dst = gen.dst
    if gen.pattern == "all_to_one" and dst is None:
        clouds = topology.nodes_in_tier("cloud")
        dst = clouds[0] if clouds else next(iter(topology.nodes))
    if gen.source_tier is not None:
        sources = topology.nodes_in_tier(gen.source_tier)
    else:
        sources = list(topology.nodes)
    return dst, [n for n in sources if n != dst]


def check(
    config: TrafficConfig, topology: Topology, origin: Origin, seed: int, faulty: bool
) -> None:
    """Every named node exists and every explicit transfer has a route."""
    source = origin.source
    for i, t in enumerate(config.transfers):
        _check_pair(topology, t.src, t.dst, source, f"workload.transfers.{i}")
    gen = config.generate
    if gen is None:
        return
    field = "workload.generate"
    dst, sources = _endpoints(gen, topology)
    if dst is not None and dst not in topology.nodes:
        raise InputError(source, f"{field}.dst", f"unknown node {dst!r}")
    needed = 1 if gen.pattern == "all_to_one" else 2
    if len(sources) < needed:
        tier = gen.source_tier or "any"
        raise InputError(source, f"{field}.source_tier", f"too few nodes of tier {tier}")
    for src in sources:
        for target in [dst] if dst is not None else sources:
            if src != target:
                _check_pair(topology, src, target, source, field)


def generated_transfers(
    gen: GeneratorConfig, topology: Topology, rng: np.random.Generator
) -> list[TransferConfig]:
    """Draw a generator's transfers: Poisson arrivals, sizes, endpoints."""
    dst, sources = _endpoints(gen, topology)
    gaps = rng.exponential(1.0 / gen.rate_per_s, size=gen.count)
    times = gen.start + np.cumsum(gaps)
    if isinstance(gen.size_bytes, int):
        sizes = np.full(gen.count, gen.size_bytes, dtype=np.int64)
    else:
        sizes = rng.integers(gen.size_bytes.min, gen.size_bytes.max + 1, size=gen.count)
    out = []
    for i in range(gen.count):
        if dst is not None:
            src, target = sources[i % len(sources)], dst
        else:
            a, b = rng.choice(len(sources), size=2, replace=False)
            src, target = sources[a], sources[b]
        out.append(
            TransferConfig(
                src=src, dst=target, bytes=int(sizes[i]), at=float(times[i]), kind=gen.kind
            )
        )
    return out


class TrafficRun(WorkloadRun):
    """Sends every transfer at its time and measures transfer times. It has finished when
    every transfer has been delivered or dropped, or when the clock reaches ``until``."""

    progress_unit = "msg"

    def __init__(
        self, config: TrafficConfig, world: Any, advance: Any, runtime: Any = None
    ) -> None:
        super().__init__(config, world, advance, runtime)
        planned = list(config.transfers)
        if config.generate is not None:
            planned += generated_transfers(config.generate, world.topology, world.rng)
        self.planned = sorted(planned, key=lambda t: t.at)  # stable: file order breaks ties
        self.ended = 0
        world.network.default_phase = "traffic"
        world.network.listeners.append(self._on_finish)

    @property
    def progress_total(self) -> float:
        return len(self.planned)

    @property
    def until(self) -> float | None:
        return self.config.until

    @property
    def largest_message_bytes(self) -> int | None:
        """The largest planned transfer plus :data:`ENVELOPE_SLACK`."""
        return max((t.bytes for t in self.planned), default=0) + ENVELOPE_SLACK

    def start(self) -> None:
        self.runtime.spawn(self._send_all())
        if self.config.until is not None:
            self.world.env.timeout(self.config.until).callbacks.append(self.finish)

    async def _send_all(self) -> None:
        """Each transfer at its time; its message's id is its index in :attr:`planned`."""
        runtime = self.runtime
        for t in self.planned:
            if not runtime.hosts(t.src):
                continue
            node = runtime.node(t.src)
            if t.at > node.now:
                await node.sleep(t.at - node.now)
            node.send(t.dst, t.kind, size_bytes=t.bytes)

    def _on_finish(self, transfer: Delivery) -> None:
        self.advance(1)
        self.ended += 1
        if self.ended == len(self.planned):
            self.finish()
        if transfer.status == DELIVERED:
            duration = transfer.t_recv - transfer.t_send
            self.runtime.node(transfer.dst).metric("transfer_time_s", duration)

    def summary(self) -> dict[str, Any]:
        durations = np.array(
            [t.t_recv - t.t_send for t in self.world.network.transfers if t.status == DELIVERED]
        )
        stats: dict[str, Any] = {"transfers_planned": len(self.planned)}
        if durations.size:
            stats["transfer_time_s"] = time_stats(durations)
        return stats
