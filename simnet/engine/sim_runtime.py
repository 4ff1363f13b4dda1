"""The simulation runtime: actor coroutines driven on SimPy's virtual clock.

Each ``await`` of the actor API becomes one SimPy event — a send's delivery, a mailbox
get, a compute job, a timeout — so a coroutine advances exactly as the SimPy process it
replaces: :func:`drive` turns a coroutine into a SimPy process generator that yields the
events the coroutine awaits and throws SimPy's interrupts (a crash) into it. A learning
job runs at once, inside the await, and adds no event; a job with compute time
(:meth:`SimNode.work`) goes to the runtime's executor when it is asked for, and its result
is taken when the compute time has passed.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from concurrent.futures import Future
from typing import Any, TypeVar

import simpy

from learning.jobs import Job
from simnet.actor import Accept, Actor, NodeApi, Runtime
from simnet.engine.node import Machine
from simnet.engine.world import World
from simnet.executors import Executor, InlineExecutor
from simnet.wire.message import Message

T = TypeVar("T")


class Wait:
    """An awaitable SimPy event: awaiting it yields the event to the driving process."""

    __slots__ = ("event",)

    def __init__(self, event: simpy.Event) -> None:
        self.event = event

    def __await__(self) -> Generator[simpy.Event, Any, Any]:
        return (yield self.event)


class Ready:
    """An awaitable with a value already known: awaiting it yields no event."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[simpy.Event, Any, Any]:
        return self.value
        yield  # a generator that returns at once


def drive(actor: Actor) -> Generator[simpy.Event, Any, Any]:
    """A SimPy process generator running ``actor``: each event it awaits is yielded to
    SimPy, the event's value (or failure, or an interrupt) goes back into the coroutine."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            event = actor.send(value) if error is None else actor.throw(error)
        except StopIteration as stop:
            return stop.value
        try:
            value, error = (yield event), None
        except Exception as exc:  # an interrupt, or a failed event: the coroutine's to handle
            value, error = None, exc


class Working:
    """Awaiting it waits for a job's compute time (a SimPy process), then takes the job's
    result from the executor; a crash during the wait gives up the job."""

    __slots__ = ("compute", "executor", "future")

    def __init__(self, compute: simpy.Process, executor: Executor, future: Future) -> None:
        self.compute, self.executor, self.future = compute, executor, future

    def __await__(self) -> Generator[simpy.Event, Any, Any]:
        try:
            yield self.compute
        except BaseException:
            self.executor.drop(self.future)
            raise
        return self.executor.take(self.future)


class SimNode(NodeApi):
    """The actor API of one simulated :class:`~simnet.engine.node.Machine`."""

    def __init__(self, world: World, node: Machine, executor: Executor) -> None:
        self.world = world
        self.executor = executor
        self.node = node
        self.id = node.id
        self.tier = node.tier

    @property
    def now(self) -> float:
        return self.world.env.now

    def post(self, message: Message) -> Wait:
        return Wait(self.node.send(message))

    def receive(self, accept: Accept | None = None, timeout: float | None = None) -> Wait:
        return Wait(self.node.receive(accept, timeout))

    def take(self, accept: Accept) -> list[Message]:
        return self.node.take(accept)

    def compute(self, flops: float) -> Wait:
        return Wait(self.node.compute(flops))

    def sleep(self, seconds: float) -> Wait:
        return Wait(self.world.env.timeout(seconds))

    def spawn(self, actor: Actor) -> Wait:
        return Wait(self.node.start(drive(actor)))

    def job(self, fn: Callable[..., T], *args: Any) -> Ready:
        return Ready(fn(*args))

    def work(self, job: Job) -> Working:  # type: ignore[override]
        future = self.executor.submit(job)
        return Working(self.node.compute(job.flops), self.executor, future)

    def metric(self, name: str, value: float) -> None:
        self.world.metric(self.id, name, value)

    def count(self, what: str) -> None:
        self.world.count(self.id, what)

    def sits_out(self, round_: int) -> bool:
        return self.world.sits_out(self.id, round_)

    def waiting(self) -> list[str]:
        return self.node.waiting()


class SimRuntime(Runtime):
    """Actors of a :class:`~simnet.engine.world.World`, on its SimPy clock."""

    def __init__(self, world: World, executor: Executor | None = None, device: str = "cpu") -> None:
        self.world = world
        self.executor = executor or InlineExecutor()
        self.device = device
        self.nodes = {
            node_id: SimNode(world, node, self.executor) for node_id, node in world.nodes.items()
        }

    @property
    def now(self) -> float:
        return self.world.env.now

    def node(self, node_id: str) -> SimNode:
        return self.nodes[node_id]

    def start(self, node_id: str, entry: Callable[[], Actor]) -> Wait:
        node = self.world.nodes[node_id]
        restart = lambda: drive(entry())  # noqa: E731
        return Wait(node.start(restart() if node.up else None, restart))

    def spawn(self, actor: Actor) -> Wait:
        return Wait(self.world.env.process(drive(actor)))

    def online(self, node_id: str) -> bool:
        return self.world.online(node_id)

    def retry_delays(self) -> list[float]:
        return list(self.world.retry.delays())
