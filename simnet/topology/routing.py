"""Static routes: shortest path by total latency, ties broken by node ids.

Among all paths of minimal total latency the route is the lexicographically smallest
sequence of node ids, so routes never depend on dict or file order.
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
    """Routes from one source, found lazily by Dijkstra on (latency, path) keys.

    The heap orders candidates by (total latency in seconds, node-id path); the first time
    a node is popped its key is minimal, and because routes are simple paths the
    lexicographic tie-break is consistent along prefixes. The search stops as soon as the
    asked destination is settled and resumes from there for the next one.
    """

    def __init__(
        self,
        src: str,
        neighbours: Callable[[str], Iterable[str]],
        latency_s: Callable[[str, str], float],
    ) -> None:
        self.src = src
        self._neighbours = neighbours
        self._latency_s = latency_s
        self._settled: dict[str, tuple[str, ...]] = {}
        self._heap: list[tuple[float, tuple[str, ...]]] = [(0.0, (src,))]

    def to(self, dst: str) -> tuple[str, ...]:
        """Node ids from the source to ``dst``, both included; ``NoRouteError`` if none."""
        while dst not in self._settled and self._heap:
            dist, path = heapq.heappop(self._heap)
            node = path[-1]
            if node in self._settled:
                continue
            self._settled[node] = path
            for nxt in self._neighbours(node):
                if nxt not in self._settled:
                    heapq.heappush(self._heap, (dist + self._latency_s(node, nxt), (*path, nxt)))
        if dst not in self._settled:
            raise NoRouteError(self.src, dst)
        return self._settled[dst]


class TreeRoutes:
    """Routes of a tree, where the only simple path is the shortest: up from each end to
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
