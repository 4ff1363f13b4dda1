"""Static routes: the path of least (latency, hops, node ids), compared exactly.

A link's weight is an integer, its latency in microseconds (``LinkSpec.latency_us``), so
sums are exact and equal routes tie on every machine. The route from ``s`` to ``d`` is the
simple path ``r = (s = v₀, …, v_k = d)`` minimising, in this order,

    W(r) = Σᵢ w(vᵢ₋₁, vᵢ)    [µs, integer]
    k                        [hops]
    (v₀, …, v_k)             [node ids as strings, lexicographic]

Every part is a function of the graph alone, so routes never depend on the order of
nodes or links in a file.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable


class NoRouteError(LookupError):
    """No path joins ``src`` to ``dst``."""

    def __init__(self, src: str, dst: str) -> None:
        self.src, self.dst = src, dst
        super().__init__(f"no route from {src!r} to {dst!r}")


class ShortestPaths:
    """Routes from one source, found lazily by Dijkstra on (weight, hops, path) keys.

    ``weight_us(u, v)`` is the integer weight of the link ``u``–``v`` (µs, ≥ 0). Every hop
    adds at least (0, 1) to the key, so the first time a node is popped its key is
    minimal and every prefix of a route is itself a route (zero-weight links included).
    The search stops as soon as the asked destination is settled and resumes from there
    for the next one.
    """

    def __init__(
        self,
        src: str,
        neighbours: Callable[[str], Iterable[str]],
        weight_us: Callable[[str, str], int],
    ) -> None:
        self.src = src
        self._neighbours = neighbours
        self._weight_us = weight_us
        self._settled: dict[str, tuple[str, ...]] = {}
        self._heap: list[tuple[int, int, tuple[str, ...]]] = [(0, 0, (src,))]

    def to(self, dst: str) -> tuple[str, ...]:
        """Node ids from the source to ``dst``, both included; ``NoRouteError`` if none."""
        while dst not in self._settled and self._heap:
            weight, hops, path = heapq.heappop(self._heap)
            node = path[-1]
            if node in self._settled:
                continue
            self._settled[node] = path
            for nxt in self._neighbours(node):
                if nxt not in self._settled:
                    key = (weight + self._weight_us(node, nxt), hops + 1, (*path, nxt))
                    heapq.heappush(self._heap, key)
        if dst not in self._settled:
            raise NoRouteError(self.src, dst)
        return self._settled[dst]


class TreeRoutes:
    """Routes of a tree, where the only simple path is the route: up from each end to
    their lowest common ancestor. Parents and depths come from one breadth-first pass
    from ``root`` (O(nodes)); a route costs O(its length)."""

    def __init__(self, root: str, neighbours: Callable[[str], Iterable[str]]) -> None:
        self.parent: dict[str, str | None] = {root: None}
        self.depth: dict[str, int] = {root: 0}
        frontier = [root]
        while frontier:
            following = []
            for node in frontier:
                for nxt in neighbours(node):
                    if nxt not in self.depth:
                        self.parent[nxt], self.depth[nxt] = node, self.depth[node] + 1
                        following.append(nxt)
            frontier = following

    def path(self, src: str, dst: str) -> tuple[str, ...]:
        """Node ids from ``src`` to ``dst``, both included."""
        up, down = [src], [dst]
        a, b = src, dst
        while self.depth[a] > self.depth[b]:
            a = self.parent[a]
            up.append(a)
        while self.depth[b] > self.depth[a]:
            b = self.parent[b]
            down.append(b)
        while a != b:
            a, b = self.parent[a], self.parent[b]
            up.append(a)
            down.append(b)
        return (*up, *reversed(down[:-1]))
