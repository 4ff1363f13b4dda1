"""A simulated node's machine: a mailbox, a compute profile, sending through the network,
crashes."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any

import simpy

from simnet.actor import Crashed, KindFilter
from simnet.engine.network import DELIVERED, Network, Transfer
from simnet.topology.graph import NodeSpec
from simnet.wire.codecs import Codec
from simnet.wire.message import Message, decode, encode

ProcessBody = Generator[simpy.Event, Any, Any]
"""What a SimPy process runs: a generator of SimPy events (:func:`~simnet.engine.sim_runtime.drive`
makes one of an actor coroutine)."""


def _defuse_crash(event: simpy.Event) -> None:
    """Let a process end quietly when a crash interrupted it (it is not a bug)."""
    if not event.ok and isinstance(event.value, simpy.Interrupt | Crashed):
        event.defused = True


class Machine:
    """An end device, edge server or cloud taking part in a simulation.

    Compute: a job of ``F`` FLOPs holds one of the node's ``slots`` for ``F / flops``
    virtual seconds; jobs beyond ``slots`` queue first-come first-served.
    Messages: :meth:`send` encodes the message (safetensors, optional codec), charges the
    network its encoded length, and puts the *decoded* message in the receiver's mailbox.
    Crashes: :meth:`crash` stops the node's actors and jobs and empties its mailbox;
    :meth:`recover` starts the actors' restart entries (see :meth:`start`).
    """

    def __init__(
        self,
        env: simpy.Environment,
        spec: NodeSpec,
        network: Network,
        directory: Mapping[str, Machine],
        codec: Codec | None = None,
    ) -> None:
        self.env = env
        self.spec = spec
        self.network = network
        self.directory = directory
        self.codec = codec or Codec()
        """Codec for payloads when :meth:`send` is given none."""
        self.mailbox = simpy.FilterStore(env)
        self.cpu = simpy.Resource(env, capacity=spec.slots)
        self.busy_s = 0.0
        """Total virtual seconds spent computing (summed over slots)."""
        self.busy: list[tuple[float, float]] = []
        """(start, end) in virtual seconds of every computation, in the order they ended."""
        self.last_active = 0.0
        """Virtual time (s) its last computation ended (0 if none)."""
        self.up = True
        self.down_since: float | None = None
        # running actors and jobs, in start order (dicts as ordered sets: a crash stops
        # them in a deterministic order)
        self._actors: dict[simpy.Process, None] = {}
        self._restarts: list[Callable[[], ProcessBody]] = []
        self._jobs: dict[simpy.Process, None] = {}
        self._waits: dict[simpy.Event, tuple[str, float]] = {}

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def tier(self) -> str:
        return self.spec.tier

    def compute_time(self, flops: float) -> float:
        """Seconds a job of ``flops`` FLOPs takes once it holds a slot: ``flops / FLOP/s``."""
        return flops / self.spec.flops

    def compute(self, flops: float) -> simpy.Process:
        """A process that waits for a free slot, then computes ``flops`` FLOPs; it fails
        with :class:`Crashed` if the node is or goes down first."""
        return self._track(self.env.process(self._compute(flops)), self._jobs)

    @staticmethod
    def _track(process: simpy.Process, running: dict[simpy.Process, None]) -> simpy.Process:
        """Keep ``process`` in ``running`` until it ends; a crash ending it is no error."""
        running[process] = None
        process.callbacks.append(_defuse_crash)
        process.callbacks.append(lambda event: running.pop(event, None))
        return process

    def _compute(self, flops: float) -> Generator[simpy.Event, Any, float]:
        if not self.up:
            raise Crashed(self.id)
        started = None
        try:
            with self.cpu.request() as slot:
                yield slot
                started = self.env.now
                duration = self.compute_time(flops)
                yield self.env.timeout(duration)
                self.busy_s += duration
                self.busy.append((started, self.env.now))
        except simpy.Interrupt:
            if started is not None:
                self.busy_s += self.env.now - started
                self.busy.append((started, self.env.now))
                self.last_active = self.env.now
            raise Crashed(self.id) from None
        self.last_active = self.env.now
        return duration

    # ------------------------------------------------------------------ actors, crashes
    def start(
        self, actor: ProcessBody | None, restart: Callable[[], ProcessBody] | None = None
    ) -> simpy.Process:
        """Run ``actor`` on this node; a crash stops it. ``restart`` makes the actor that
        takes over each time the node recovers. ``None`` (the node is down, so its actor
        does not run): the process fails with :class:`Crashed` at once."""
        if restart is not None:
            self._restarts.append(restart)
        return self._track(self.env.process(actor or self._crashed()), self._actors)

    def _crashed(self) -> ProcessBody:
        raise Crashed(self.id)
        yield  # a generator: the process of an actor that never ran

    def crash(self) -> None:
        """Go down now: actors and jobs stop, the mailbox's messages are lost."""
        if not self.up:
            return
        self.up = False
        self.down_since = self.env.now
        for process in [*self._actors, *self._jobs]:
            if process.is_alive:
                process.interrupt("crash")
        self.mailbox = simpy.FilterStore(self.env)
        self.cpu = simpy.Resource(self.env, capacity=self.spec.slots)
        self._waits.clear()

    def recover(self) -> None:
        """Come back up now and start every actor's restart entry."""
        if self.up:
            return
        self.up = True
        self.down_since = None
        for restart in self._restarts:
            self._track(self.env.process(restart()), self._actors)

    def waiting(self) -> list[str]:
        """What this node's actors are waiting to receive, as ``what (since t s)``."""
        return [f"{what} (since {since:.6g} s)" for what, since in self._waits.values()]

    def send(self, message: Message, codec: Codec | None = None) -> simpy.Event:
        """Send ``message`` (its ``src`` must be this node); the event yields the Transfer.

        A message with a declared ``size_bytes`` and no payload is charged that size and
        delivered as is; any other message is charged its encoded length, encoded with
        ``codec`` or else the node's default codec.
        """
        if message.src != self.id:
            raise ValueError(f"node {self.id!r} cannot send a message from {message.src!r}")
        if message.size_bytes is not None and not message.payload:
            data, size = None, message.size_bytes
        else:
            data = encode(message, codec or self.codec)
            size = len(data)
        done = self.network.send(self.id, message.dst, size, message.kind, data=(data, message))
        done.callbacks.append(self._deliver)
        return done

    def _deliver(self, event: simpy.Event) -> None:
        transfer: Transfer = event.value
        if transfer.status != DELIVERED:
            return
        data, original = transfer.data
        transfer.data = None  # the receiver owns the message now; keep the log light
        received = decode(data) if data is not None else original
        received.id = transfer.id
        received.reply_to, received.t_send = original.reply_to, transfer.t_send
        self.directory[transfer.dst].mailbox.put(received)

    def receive(
        self, accept: Callable[[Message], bool] | None = None, timeout: float | None = None
    ) -> simpy.Event:
        """An event that yields the oldest message in the mailbox (that ``accept`` takes);
        with ``timeout`` (seconds), ``None`` if no such message came in time."""
        get = self.mailbox.get() if accept is None else self.mailbox.get(accept)
        what = "a message" if accept is None or not isinstance(accept, KindFilter) else accept
        self._waits[get] = (str(what), self.env.now)
        get.callbacks.append(lambda event: self._waits.pop(event, None))
        if timeout is None:
            return get
        return self.env.process(self._receive_until(get, timeout))

    def _receive_until(self, get: simpy.Event, timeout: float) -> ProcessBody:
        yield get | self.env.timeout(timeout)
        if get.triggered:
            return get.value
        get.cancel()
        self._waits.pop(get, None)
        return None

    def take(self, accept: Callable[[Message], bool]) -> list[Message]:
        """Remove and return, oldest first, every message in the mailbox ``accept`` takes
        (without waiting)."""
        taken = [m for m in self.mailbox.items if accept(m)]
        for message in taken:
            self.mailbox.items.remove(message)
        return taken
