"""The actor API: everything a protocol may use to act as a node.

A node's behaviour is an ``async def`` coroutine that awaits only what a :class:`NodeApi`
gives it — the time, sending, receiving (with an optional timeout), computing FLOPs,
sleeping, learning jobs, background actors — and records metrics. Two runtimes drive
the same coroutines: :mod:`simnet.engine.sim_runtime` on SimPy's virtual clock, and
:mod:`simnet.live` on asyncio loops over ZeroMQ in wall-clock time. Protocol modules
import this module, never SimPy or ZeroMQ.

Rules both runtimes keep:

* ``send`` sends at once; awaiting what it returns gives the :class:`Delivery`
  (``status`` :data:`DELIVERED` or :data:`DROPPED`, the times in seconds).
* ``receive`` gives the oldest mailbox message that ``accept`` takes; with ``timeout``
  (seconds), ``None`` if none came in time.
* ``compute(F)`` holds one of the node's slots for ``F / FLOP/s`` seconds; it raises
  :class:`Crashed` if the node goes down first.
* ``job(fn, *args)`` runs a learning step (training, averaging, evaluation) and gives
  its result; it takes no time of its own (its FLOPs are charged by ``compute``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from simnet.wire.message import Message


DELIVERED = "delivered"
DROPPED = "dropped"
IN_FLIGHT = "in_flight"

T = TypeVar("T")
Actor = Coroutine[Any, Any, Any]
"""A node's behaviour: a coroutine awaiting only the actor API."""
Accept = Callable[["Message"], bool]


class Work(Protocol):
    """A learning job as the actor API sees it (:class:`learning.jobs.Job` is one): its
    ``flops`` (FLOPs) and ``run()`` giving its result."""

    flops: int

    def run(self) -> Any: ...


class Crashed(Exception):
    """The node computing a job went down before the job finished."""


class Delivery(Protocol):
    """What awaiting a send gives: the message's id, status and times (seconds)."""

    id: int
    status: str
    t_send: float
    t_recv: float | None


@dataclass(frozen=True)
class KindFilter:
    """A mailbox filter accepting messages of ``kinds`` (of round ``round`` if given);
    reads as what it waits for."""

    kinds: tuple[str, ...]
    round: int | None = None

    def __call__(self, message: Message) -> bool:
        return message.kind in self.kinds and (
            self.round is None or message.meta.get("round") == self.round
        )

    def __str__(self) -> str:
        kinds = " or ".join(self.kinds)
        return kinds if self.round is None else f"{kinds} of round {self.round}"


def kind_is(*kinds: str, round: int | None = None) -> KindFilter:  # noqa: A002
    """A mailbox filter accepting messages of ``kinds`` (of round ``round`` if given)."""
    return KindFilter(kinds, round)


@dataclass(frozen=True)
class ReplyFilter:
    """A mailbox filter accepting the ``kind`` message that answers message ``to``."""

    kind: str
    to: int

    def __call__(self, message: Message) -> bool:
        return message.kind == self.kind and message.reply_to == self.to

    def __str__(self) -> str:
        return f"{self.kind} answering message {self.to}"


class NodeApi(ABC):
    """One node as its actors see it (see the module doc for the rules)."""

    id: str
    tier: str

    @property
    @abstractmethod
    def now(self) -> float:
        """The current time, seconds since the run started."""

    def send(
        self,
        dst: str,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        *,
        size_bytes: int | None = None,
        reply_to: int | None = None,
        **meta: Any,
    ) -> Awaitable[Delivery]:
        """Send a message now (``size_bytes``: a declared size for a payload-less one;
        ``reply_to``: the id of the message it answers); await it for its delivery."""
        from simnet.wire.message import Message  # the wire's, loaded when first sent

        message = Message(
            self.id, dst, kind, dict(payload or {}), meta, size_bytes, reply_to=reply_to
        )
        return self.post(message)

    @abstractmethod
    def post(self, message: Message) -> Awaitable[Delivery]:
        """Send ``message`` (from this node) now; await it for its delivery."""

    @abstractmethod
    def receive(
        self, accept: Accept | None = None, timeout: float | None = None
    ) -> Awaitable[Message | None]:
        """The oldest message ``accept`` takes (``None`` after ``timeout`` seconds)."""

    async def gather(
        self,
        accept: Accept,
        wanted: int,
        deadline_s: float | None = None,
        *,
        from_first: bool = False,
        counts: Callable[[Message], bool] | None = None,
    ) -> list[Message]:
        """Receive what ``accept`` takes until ``wanted`` messages count or the deadline
        passes; the counted ones, in arrival order.

        ``counts(m)`` (default: every message counts) is called on each message received
        and may act on it (keep a late one, drop a resend). The deadline is t₀ +
        ``deadline_s``, t₀ the call's time or, with ``from_first``, the time the first
        counted message came (``None``: no deadline, wait as long as it takes). Once the
        clock is at or past the deadline (float rounding can put a timeout's instant a hair
        past it) the wait left is 0, never negative.
        """
        got: list[Message] = []
        until = None if deadline_s is None or from_first else self.now + deadline_s
        while len(got) < wanted:
            left = None if until is None else max(0.0, until - self.now)
            message = await self.receive(accept, left)
            if message is None:
                break
            if counts is None or counts(message):
                got.append(message)
                if until is None and deadline_s is not None:
                    until = self.now + deadline_s
        return got

    @abstractmethod
    def take(self, accept: Accept) -> list[Message]:
        """Remove and return, oldest first, every queued message ``accept`` takes."""

    @abstractmethod
    def compute(self, flops: float) -> Awaitable[float]:
        """Compute ``flops`` FLOPs on one of the node's slots; gives the seconds it took."""

    @abstractmethod
    def sleep(self, seconds: float) -> Awaitable[None]:
        """Let ``seconds`` pass."""

    @abstractmethod
    def spawn(self, actor: Actor) -> Awaitable[Any]:
        """Run ``actor`` in the background on this node (a crash of the node stops it);
        await the handle for its result."""

    @abstractmethod
    def job(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        """Run the learning step ``fn(*args)``, which takes no compute time; await it for
        its result."""

    async def work(self, job: Work) -> Any:
        """Run the learning job ``job`` and charge its ``flops`` as compute on this node;
        gives the job's result once both are done. (The simulation runtime may run the job
        ahead of the clock, on its executor.)"""
        result = await self.job(job.run)
        await self.compute(job.flops)
        return result

    @abstractmethod
    def metric(self, name: str, value: float) -> None:
        """Record ``name`` = ``value`` for this node now (a ``metrics.csv`` row)."""

    @abstractmethod
    def count(self, what: str) -> None:
        """Count one fault-related event ``what`` (``retry``, ``gave_up``, …) here."""

    @abstractmethod
    def sits_out(self, round_: int) -> bool:
        """Whether this device drops out of round ``round_`` (``faults.dropout``)."""

    @abstractmethod
    def waiting(self) -> list[str]:
        """What this node's actors wait to receive, one phrase each."""


class Runtime(ABC):
    """What a workload needs to start actors: nodes, background coroutines, retries."""

    device = "cpu"
    """The torch device learning jobs run on (``execution.device``)."""

    @property
    @abstractmethod
    def now(self) -> float:
        """The current time, seconds since the run started."""

    @abstractmethod
    def node(self, node_id: str) -> NodeApi:
        """The actor API of ``node_id``."""

    @abstractmethod
    def start(self, node_id: str, entry: Callable[[], Actor]) -> Awaitable[Any]:
        """Run ``entry()`` as an actor of ``node_id``; after each recovery of the node from
        a crash, ``entry()`` again. Await the handle for the first run's result."""

    @abstractmethod
    def spawn(self, actor: Actor) -> Awaitable[Any]:
        """Run ``actor`` tied to no node (a crash stops it not); await it for its result."""

    def online(self, node_id: str) -> bool:
        """Whether ``node_id`` is online now by its availability (``faults.availability``;
        a live run has none: always)."""
        return True

    def hosts(self, node_id: str) -> bool:
        """Whether this runtime runs ``node_id``'s actors (a simulation runs every node's;
        a process of a live run only its own)."""
        return True

    @abstractmethod
    def retry_delays(self) -> list[float]:
        """Seconds to wait before each resend of a dropped message (``faults.retry``)."""
