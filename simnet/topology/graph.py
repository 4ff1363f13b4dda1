"""The platform: nodes with compute profiles and full-duplex links, with static routes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import networkx as nx

from simnet.topology.routing import ShortestPaths, TreeRoutes

TIERS = ("end", "edge", "cloud")
"""Tier names, from the device up."""

Hop = tuple[str, str]
"""One direction of a link: (from node, to node)."""


def mbps_to_bytes_per_s(mbps: float) -> float:
    """Mbit/s → bytes/s: ``mbps × 10⁶ / 8``."""
    return mbps * 1e6 / 8


@dataclass(frozen=True)
class Power:
    """A node's draw in W in each state (docs/energy.md): ``idle_w`` doing nothing,
    ``busy_w`` per busy compute slot, ``tx_w`` sending, ``rx_w`` receiving."""

    idle_w: float = 0.0
    busy_w: float = 0.0
    tx_w: float = 0.0
    rx_w: float = 0.0


@dataclass(frozen=True)
class NodeSpec:
    """A node of the platform: ``flops`` in FLOP/s, ``slots`` jobs computed at once,
    ``power`` its draw in each state."""

    id: str
    tier: str
    flops: float
    slots: int = 1
    power: Power = Power()


@dataclass(frozen=True)
class LinkSpec:
    """A full-duplex link; "up" is the direction from ``a`` to ``b``.

    ``latency_ms`` in milliseconds, ``up_mbps``/``down_mbps`` in Mbit/s.
    """

    a: str
    b: str
    latency_ms: float
    up_mbps: float
    down_mbps: float

    @property
    def latency_s(self) -> float:
        """One-way latency in seconds."""
        return self.latency_ms / 1e3

    @property
    def latency_us(self) -> int:
        """One-way latency in whole microseconds, ``round(1000 × latency_ms)`` (halves to
        even): the exact weight of the link in route choice."""
        return round(self.latency_ms * 1e3)

    @property
    def key(self) -> frozenset[str]:
        return frozenset((self.a, self.b))

    def mbps(self, src: str) -> float:
        """Bandwidth in Mbit/s of the direction leaving ``src``."""
        return self.up_mbps if src == self.a else self.down_mbps


def link_class(tier_a: str, tier_b: str) -> str:
    """Tier-pair name of a link, lower tier first: ``end-edge``, ``edge-cloud``, ``edge-edge``…"""
    lo, hi = sorted((tier_a, tier_b), key=lambda t: (TIERS.index(t) if t in TIERS else 99, t))
    return f"{lo}-{hi}"


def class_order(name: str) -> tuple[int, ...]:
    """Sort key of a link class such as ``end-edge``: by tier, end first."""
    return tuple(TIERS.index(t) if t in TIERS else len(TIERS) for t in name.split("-"))


class Topology:
    """Nodes and links of a platform, as a networkx graph with cached static routes."""

    def __init__(self, nodes: list[NodeSpec], links: list[LinkSpec]) -> None:
        self.nodes: dict[str, NodeSpec] = {n.id: n for n in nodes}
        self.links: dict[frozenset[str], LinkSpec] = {link.key: link for link in links}
        self.graph = nx.Graph()
        for node in nodes:
            self.graph.add_node(node.id, tier=node.tier, flops=node.flops, slots=node.slots)
        for link in links:
            self.graph.add_edge(
                link.a,
                link.b,
                latency_ms=link.latency_ms,
                up_mbps=link.up_mbps,
                down_mbps=link.down_mbps,
            )
        self._routes: dict[str, ShortestPaths] = {}

    @cached_property
    def _sorted_neighbours(self) -> dict[str, list[str]]:
        return {n: sorted(self.graph.neighbors(n)) for n in self.graph.nodes}

    def link(self, u: str, v: str) -> LinkSpec:
        """The link joining ``u`` and ``v`` (either order)."""
        return self.links[frozenset((u, v))]

    def tier(self, node: str) -> str:
        return self.nodes[node].tier

    def link_class(self, u: str, v: str) -> str:
        """Tier pair of the link between ``u`` and ``v`` (e.g. ``end-edge``)."""
        return link_class(self.tier(u), self.tier(v))

    def path(self, src: str, dst: str) -> tuple[str, ...]:
        """Node ids along the static route, ``src`` and ``dst`` included: least total
        latency in integer µs, then fewest hops, then smallest node-id sequence.

        Raises ``KeyError`` for an unknown node and ``NoRouteError`` if none joins them.
        """
        for node in (src, dst):
            if node not in self.nodes:
                raise KeyError(f"unknown node {node!r}")
        if self._tree is not None:
            return self._tree.path(src, dst)
        if src not in self._routes:
            self._routes[src] = ShortestPaths(
                src, self._sorted_neighbours.__getitem__, lambda u, v: self.link(u, v).latency_us
            )
        return self._routes[src].to(dst)

    @cached_property
    def _tree(self) -> TreeRoutes | None:
        """Routes of a topology that is a tree (one path between any two nodes: the
        shortest), ``None`` for any other."""
        if len(self.links) != len(self.nodes) - 1 or not self.nodes:
            return None
        tree = TreeRoutes(next(iter(self.nodes)), self._sorted_neighbours.__getitem__)
        return tree if len(tree.depth) == len(self.nodes) else None

    def route(self, src: str, dst: str) -> tuple[Hop, ...]:
        """Directed hops of the static route from ``src`` to ``dst`` (empty if equal)."""
        path = self.path(src, dst)
        return tuple(zip(path[:-1], path[1:], strict=True))

    def nodes_in_tier(self, tier: str) -> list[str]:
        """Ids of the nodes of ``tier``, in file order."""
        return [n.id for n in self.nodes.values() if n.tier == tier]

    def to_dict(self) -> dict[str, Any]:
        """The topology in the YAML file format of docs/design.md (bandwidths per direction,
        profiles expanded, ``power`` only where some draw is not 0)."""

        def link_dict(link: LinkSpec) -> dict[str, Any]:
            out: dict[str, Any] = {"a": link.a, "b": link.b, "latency_ms": link.latency_ms}
            if link.up_mbps == link.down_mbps:
                out["bandwidth_mbps"] = link.up_mbps
            else:
                out.update(up_mbps=link.up_mbps, down_mbps=link.down_mbps)
            return out

        def node_dict(node: NodeSpec) -> dict[str, Any]:
            out: dict[str, Any] = {"id": node.id, "tier": node.tier, "flops": node.flops}
            out["slots"] = node.slots
            if node.power != Power():
                out["power"] = asdict(node.power)
            return out

        return {
            "nodes": [node_dict(n) for n in self.nodes.values()],
            "links": [link_dict(link) for link in self.links.values()],
        }
