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


def shortest_paths(
    src: str,
    neighbours: Callable[[str], Iterable[str]],
    latency_s: Callable[[str, str], float],
) -> dict[str, tuple[str, ...]]:
    """Routes from ``src`` to every reachable node (Dijkstra on (latency, path) keys).

    The heap orders candidates by (total latency in seconds, node-id path); the first time a
    node is popped its key is minimal, and because routes are simple paths the
    lexicographic tie-break is consistent along prefixes.
    """
    routes: dict[str, tuple[str, ...]] = {}
    heap: list[tuple[float, tuple[str, ...]]] = [(0.0, (src,))]
    while heap:
        dist, path = heapq.heappop(heap)
        node = path[-1]
        if node in routes:
            continue
        routes[node] = path
        for nxt in neighbours(node):
            if nxt not in routes:
                heapq.heappush(heap, (dist + latency_s(node, nxt), (*path, nxt)))
    return routes
