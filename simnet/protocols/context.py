"""What every protocol shares: the runtime's nodes, the learning side, seeds, and sending
with the protocol's policy for dropped messages.

Two ways to send (docs/design.md, rule 7: a dropped message is seen by its sender):

* :meth:`Context.send` — once; awaiting what it returns gives the delivery, whose
  ``status`` says whether it was delivered. For messages tied to a round, which a deadline
  covers.
* :meth:`Context.deliver` / :meth:`Context.post` — resend after ``timeout_s · 2^k``
  (k = 0, 1, …, at most ``attempts`` times, ``faults.retry``) until delivered, then give
  up and count it. ``deliver`` waits for the outcome; ``post`` leaves it to a background
  actor of the sender (which a crash of the sender stops).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import torch

from simnet.actor import DELIVERED, Delivery, NodeApi, Runtime

State = dict[str, torch.Tensor]


class Context:
    """The runtime, the learning side (a :class:`~learning.federated.Learner` or an ML-ECS
    :class:`~learning.mlecs.Mlecs`), node seeds, sending."""

    def __init__(self, runtime: Runtime, learner: Any, seed: int) -> None:
        self.runtime = runtime
        self.learner = learner
        self.seed = seed
        self.counter = 0
        self.sent: dict[tuple[str, str], tuple[int, int]] = {}
        """Messages sent and their tensor elements, by (sender, kind)."""

    @property
    def parameters(self) -> dict[str, int]:
        """Tensor elements sent, by message kind."""
        out: dict[str, int] = {}
        for (_, kind), (_, elements) in self.sent.items():
            out[kind] = out.get(kind, 0) + elements
        return out

    def next_seed(self) -> int:
        """A fresh training seed, deterministic in the order the run asks."""
        self.counter += 1
        return self.seed * 1_000_003 + self.counter

    def node(self, node_id: str) -> NodeApi:
        return self.runtime.node(node_id)

    def send(
        self, src: str, dst: str, kind: str, payload: State | None = None, **meta: Any
    ) -> Awaitable[Delivery]:
        """Send a message of real tensors once; counts the message and its tensor elements
        under ``(src, kind)``."""
        payload = dict(payload or {})
        count = sum(t.numel() for t in payload.values())
        messages, elements = self.sent.get((src, kind), (0, 0))
        self.sent[(src, kind)] = (messages + 1, elements + count)
        return self.node(src).send(dst, kind, payload, **meta)

    async def deliver(
        self, src: str, dst: str, kind: str, payload: State | None = None, **meta: Any
    ) -> bool:
        """Send, resending a dropped message by the retry policy; returns whether it was
        delivered (a give-up is counted as ``gave_up``)."""
        return await self.retrying(src, lambda: self.send(src, dst, kind, payload, **meta))

    def post(
        self, src: str, dst: str, kind: str, payload: State | None = None, **meta: Any
    ) -> None:
        """:meth:`deliver` without waiting: the first attempt leaves now, resends are a
        background actor's."""
        attempt = lambda: self.send(src, dst, kind, payload, **meta)  # noqa: E731
        self.node(src).spawn(self.retrying(src, attempt, attempt()))

    async def retrying(
        self,
        src: str,
        attempt: Callable[[], Awaitable[Delivery]],
        first: Awaitable[Delivery] | None = None,
    ) -> bool:
        """Run ``attempt`` (a send from ``src``; ``first`` if already made) until it is
        delivered or the retry policy gives up; returns whether delivered."""
        node = self.node(src)
        delivery = await (first if first is not None else attempt())
        for delay in self.runtime.retry_delays():
            if delivery.status == DELIVERED:
                return True
            await node.sleep(delay)
            node.count("retry")
            delivery = await attempt()
        if delivery.status == DELIVERED:
            return True
        node.count("gave_up")
        return False

    def record(self, node_id: str, metrics: dict[str, float], keys: tuple[str, ...]) -> None:
        node = self.node(node_id)
        for key in keys:
            if key in metrics:
                node.metric(key, metrics[key])
