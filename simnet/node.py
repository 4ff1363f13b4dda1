"""Nodes as actors: a mailbox, a compute profile, and sending through the network."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any

import simpy

from simnet.codecs import Codec
from simnet.message import Message, decode, encode
from simnet.network import DELIVERED, Network, Transfer
from simnet.topology.graph import Node as NodeSpec


class Node:
    """An end device, edge server or cloud taking part in a simulation.

    Compute: a job of ``F`` FLOPs holds one of the node's ``slots`` for ``F / flops``
    virtual seconds; jobs beyond ``slots`` queue first-come first-served.
    Messages: :meth:`send` encodes the message (safetensors, optional codec), charges the
    network its encoded length, and puts the *decoded* message in the receiver's mailbox.
    """

    def __init__(
        self,
        env: simpy.Environment,
        spec: NodeSpec,
        network: Network,
        directory: Mapping[str, Node],
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
        """Total virtual seconds spent computing."""

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
        """A process that waits for a free slot, then computes ``flops`` FLOPs."""
        return self.env.process(self._compute(flops))

    def _compute(self, flops: float) -> Generator[simpy.Event, Any, float]:
        with self.cpu.request() as slot:
            yield slot
            duration = self.compute_time(flops)
            yield self.env.timeout(duration)
            self.busy_s += duration
        return duration

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
        self.directory[transfer.dst].mailbox.put(received)

    def receive(self, accept: Callable[[Message], bool] | None = None) -> simpy.Event:
        """An event that yields the oldest message in the mailbox (that ``accept`` takes)."""
        return self.mailbox.get() if accept is None else self.mailbox.get(accept)
