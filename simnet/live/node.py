"""A node of a live run: the actor API in wall-clock time on an asyncio loop.

Compute is real: a learning job of ``work(job)`` runs on the process's job thread, and
its compute then waits until ``F / FLOP/s`` seconds have passed since that job began
(``wait = max(0, F / FLOP/s − the job's own wall seconds)``); a host slower than the
profile cannot wait less than nothing, and the excess is recorded as a
``compute_overrun_s`` metric. ``compute(F)`` alone waits ``F / FLOP/s``; ``job(fn)``
(an evaluation, a merge) takes no compute time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from simnet.actor import Accept, Actor, NodeApi, Work
from simnet.topology.graph import NodeSpec
from simnet.wire.message import Message

if TYPE_CHECKING:
    from simnet.live.host import LiveHost

T = TypeVar("T")


class LiveNode(NodeApi):
    """One node of a live run (its mailbox, slots and job accounting)."""

    def __init__(self, host: LiveHost, spec: NodeSpec) -> None:
        self.host = host
        self.spec = spec
        self.id = spec.id
        self.tier = spec.tier
        self.items: list[Message] = []
        self.waiters: list[tuple[Accept | None, asyncio.Future[Message], str, float]] = []
        self.slots = asyncio.Semaphore(spec.slots)
        self.busy_s = 0.0
        self.overrun_s = 0.0

    @property
    def now(self) -> float:
        return self.host.now

    def post(self, message: Message) -> asyncio.Future:
        return self.host.send(message)

    def put(self, message: Message) -> None:
        """A message arrived: to the oldest waiting receive that takes it, else queued."""
        for i, (accept, future, _, _) in enumerate(self.waiters):
            if not future.done() and (accept is None or accept(message)):
                del self.waiters[i]
                future.set_result(message)
                return
        self.items.append(message)

    async def receive(
        self, accept: Accept | None = None, timeout: float | None = None
    ) -> Message | None:
        for i, message in enumerate(self.items):
            if accept is None or accept(message):
                return self.items.pop(i)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        entry = (accept, future, str(accept or "a message"), self.now)
        self.waiters.append(entry)
        try:
            done, _ = await asyncio.wait({future}, timeout=timeout)
        finally:
            if entry in self.waiters:
                self.waiters.remove(entry)
        return future.result() if done else None

    def take(self, accept: Accept) -> list[Message]:
        taken = [m for m in self.items if accept(m)]
        self.items = [m for m in self.items if not accept(m)]
        return taken

    async def compute(self, flops: float) -> float:
        return await self._compute(flops, 0.0)

    async def work(self, job: Work) -> Any:
        """Run ``job`` and charge its FLOPs, less the job's own wall seconds."""
        started = time.perf_counter()
        result = await self.host.run_job(job.run)
        await self._compute(job.flops, time.perf_counter() - started)
        return result

    async def _compute(self, flops: float, spent_s: float) -> float:
        """Hold a slot for ``flops / FLOP/s`` seconds, of which ``spent_s`` have passed."""
        async with self.slots:
            duration = flops / self.spec.flops
            wait = duration - spent_s
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                self.overrun_s -= wait
                self.metric("compute_overrun_s", -wait)
            self.busy_s += duration
        return duration

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def spawn(self, actor: Actor) -> asyncio.Task:
        return self.host.task(actor, self.id)

    async def job(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.host.run_job(fn, *args)

    def metric(self, name: str, value: float) -> None:
        self.host.metric(self.id, name, value)

    def count(self, what: str) -> None:
        self.host.faults[what] += 1
        self.metric(what, 1)

    def sits_out(self, round_: int) -> bool:
        """Never: a live run injects no faults."""
        return False

    def waiting(self) -> list[str]:
        return [f"{what} (since {since:.6g} s)" for _, _, what, since in self.waiters]
