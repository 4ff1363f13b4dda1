"""Links emulated in wall-clock time: latency, paced capacity, fair sharing by chunks.

A message of ``S`` bytes is cut into chunks of at most ``c`` bytes. Each directed link
``h`` (capacity ``C_h`` bytes/s, latency ``ℓ_h``) sends one chunk at a time, taking the
flows that have a chunk waiting in turn (round robin); chunk ``k`` of a flow, queued at
``q_k``, leaves at

    start_k = max(q_k, free_h),   free_h ← start_k + len_k / C_h

and reaches the link's far end at ``free_h + ℓ_h``, where it is queued on the next link
of its route (the arrival time is its ``q`` there). The times are ideal times on the
monotonic clock, so timer jitter does not accumulate along a message or a link. A lone
message on a route of ``H`` hops with bottleneck ``C_min`` therefore arrives after

    Σ_h ℓ_h + S / C_min + (H − 1) · c / C_min        (store-and-forward of one chunk)

and flows sharing a link get equal chunk turns: the max-min share of the flow model,
up to one chunk. A link that is down drops every flow that has a chunk waiting on it or
that puts one on it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

CHUNK_S = 0.001
"""Target transmission time of one chunk, seconds: chunks carry ``C · CHUNK_S`` bytes."""
MIN_CHUNK = 1_024
MAX_CHUNK = 1 << 20


def chunk_bytes(bytes_per_s: float) -> int:
    """Chunk size on a link of ``bytes_per_s``: about :data:`CHUNK_S` of transmission."""
    return int(min(MAX_CHUNK, max(MIN_CHUNK, bytes_per_s * CHUNK_S)))


@dataclass
class Chunk:
    """``length`` bytes of flow ``flow`` queued at ``queued`` (monotonic seconds);
    ``arrive(t)`` is called once it reaches the far end, at ideal time ``t``."""

    flow: int
    length: int
    queued: float
    arrive: Callable[[float], None]


class EmulatedLink:
    """One directed link of ``bytes_per_s`` capacity and ``latency_s`` latency."""

    def __init__(
        self, latency_s: float, bytes_per_s: float, drop: Callable[[int], None] = lambda f: None
    ) -> None:
        self.latency_s = latency_s
        self.bytes_per_s = bytes_per_s
        self.drop = drop
        """Called with a flow's id when the link drops it (it is or goes down)."""
        self.up = True
        self.free = 0.0
        """Monotonic time (s) the link finishes its last chunk."""
        self.flows: dict[int, deque[Chunk]] = {}
        """Waiting chunks by flow, in round-robin order."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def put(self, chunk: Chunk) -> None:
        """Queue ``chunk`` behind its flow's earlier chunks (drop its flow if down)."""
        if not self.up:
            self.drop(chunk.flow)
            return
        self.flows.setdefault(chunk.flow, deque()).append(chunk)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._send())
        self._wake.set()

    def set_up(self, up: bool) -> None:
        """Go up or down; going down drops every flow with a chunk waiting."""
        self.up = up
        if not up:
            for flow in self.flows:
                self.drop(flow)
            self.flows.clear()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.flows:
                self._wake.clear()
                await self._wake.wait()
                continue
            flow, queue = next(iter(self.flows.items()))
            chunk = queue.popleft()
            del self.flows[flow]
            if queue:  # back of the round
                self.flows[flow] = queue
            start = max(chunk.queued, self.free)
            self.free = start + chunk.length / self.bytes_per_s
            arrival = self.free + self.latency_s
            loop.call_at(arrival, chunk.arrive, arrival)
            wait = self.free - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
