"""One OS process of a live run: its nodes' actors, mailboxes and outgoing links.

Every process builds the same world and workload from the scenario and its seed, then
starts the actors of the nodes it hosts only (:meth:`LiveHost.hosts`). A message is encoded
as in the simulation (safetensors; a declared size is padded with zeros to that size),
cut into chunks, and crosses its route hop by hop: the process hosting a hop's tail node
paces the chunk on that link (:mod:`simnet.live.links`) and hands it to the next node —
in its own process, or over ZeroMQ to the mailbox of the node's process. The destination
reassembles the message, puts it in the node's mailbox and acknowledges it to the
sender, whose ``send`` then completes. With ``shaping = "none"`` a message goes straight
to the destination's mailbox (in frames of at most :data:`UNSHAPED_CHUNK` bytes).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import struct
import time
import zlib
from collections import Counter
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import torch
import zmq.asyncio

from simnet.actor import DELIVERED, Actor, Runtime
from simnet.config.scenario import load_scenario
from simnet.live.links import Chunk, EmulatedLink, chunk_bytes
from simnet.live.mailbox import Mailbox, start_authenticator
from simnet.live.node import LiveNode
from simnet.live.wire import BadFrame, Header, Reassembly, chunks
from simnet.wire.message import ENVELOPE_KEY, Message, decode, encode
from simnet.workloads import WORKLOADS

T = TypeVar("T")
MAX_FRAME_BYTES = 64 << 20
"""Largest frame a mailbox accepts, bytes."""
UNSHAPED_CHUNK = 16 << 20
"""Largest frame of an unshaped message (``--shaping none``), bytes."""
REPORT_S = 0.1
"""Seconds between two progress reports to the launcher."""


@dataclass(frozen=True)
class HostPlan:
    """What one process runs: the scenario (file, overrides, seed), its ``index``, the
    node → process ``assignment``, how links are emulated, CURVE ``keys`` (a folder or
    ``None``) and node → endpoint ``addresses`` to bind (``None``: a free loopback port)."""

    scenario: str
    overrides: tuple[tuple[str, Any], ...]
    seed: int | None
    index: int
    assignment: dict[str, int]
    shaping: str
    keys: str | None
    addresses: dict[str, str] | None


@dataclass
class LiveDelivery:
    """The outcome of a live send (times in seconds since the run started)."""

    id: int
    dst: str
    status: str
    t_send: float
    t_recv: float | None


def padded(message: Message, data: bytes) -> bytes:
    """What crosses the wire: the encoded message, padded with zeros to a declared size."""
    size = message.size_bytes or 0
    return data + bytes(max(0, size - len(data)))


def unpadded(data: bytes) -> Message:
    """Inverse of :func:`padded` ∘ encode."""
    (n,) = struct.unpack("<Q", data[:8])
    envelope = json.loads(json.loads(data[8 : 8 + n])["__metadata__"][ENVELOPE_KEY])
    return decode(data[: 8 + n] if envelope["size_bytes"] is not None else data)


class LiveHost(Runtime):
    """The runtime of one process of a live run."""

    def __init__(self, plan: HostPlan) -> None:
        self.plan = plan
        scenario = load_scenario(plan.scenario, list(plan.overrides), plan.seed)
        self.scenario = scenario
        self.world = scenario.world()
        self.topology = self.world.topology
        self.local = [n for n, k in plan.assignment.items() if k == plan.index]
        self.local_set = frozenset(self.local)
        self.error: BaseException | None = None
        self.running: Counter[str] = Counter()
        """Actors running, by local node."""
        self.ended: set[str] = set()
        """Local nodes whose actors have all ended."""
        self.remote_ended: set[str] = set()
        self.remote: dict[str, list[asyncio.Future]] = {}
        """Handles of other processes' actors, by node: done when they have ended."""
        self.nodes = {n: LiveNode(self, spec) for n, spec in self.topology.nodes.items()}
        self.t0 = 0.0
        self.metrics: list[tuple[float, str, str, float]] = []
        self.faults: Counter[str] = Counter()
        self.sent: dict[int, dict[str, Any]] = {}
        """Message rows of the sends from this process, by id."""
        self.received: dict[int, float] = {}
        """Receive times (s) of the messages delivered to this process's nodes, by id."""
        self.dropped: dict[int, float] = {}
        """Times (s) a link emulated here dropped a message, by id."""
        self.pending: dict[int, asyncio.Future] = {}
        self.links: dict[tuple[str, str], EmulatedLink] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        self.outboxes: dict[tuple[str, str], asyncio.Queue] = {}
        self.reassembly = Reassembly(1 << 31)
        self.progress = 0.0
        self.tasks: set[asyncio.Task] = set()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="simnet-job")
        self.device = scenario.config.execution.device
        self.ids: Callable[[], int] = itertools.count(plan.index * 1_000_000_000).__next__
        kind = WORKLOADS[scenario.workload.kind]  # type: ignore[attr-defined]
        self.workload = kind.Run(scenario.workload, self.world, self._advance, self)
        if scenario.workload.kind == "traffic":  # type: ignore[attr-defined]
            # a transfer's id is its index in the plan; this process sends its sources' own
            mine = (i for i, t in enumerate(self.workload.planned) if self.hosts(t.src))
            self.ids = mine.__next__

    # ------------------------------------------------------------------ Runtime
    @property
    def now(self) -> float:
        return time.monotonic() - self.t0

    def node(self, node_id: str) -> LiveNode:
        return self.nodes[node_id]

    def hosts(self, node_id: str) -> bool:
        return node_id in self.local_set

    def start(self, node_id: str, entry: Callable[[], Actor]) -> asyncio.Future:
        """Run ``entry()`` if this process hosts ``node_id``; else the handle completes
        when the launcher says the node's actors have ended."""
        if not self.hosts(node_id):
            future = asyncio.get_running_loop().create_future()
            if node_id in self.remote_ended:
                future.set_result(None)
            else:
                self.remote.setdefault(node_id, []).append(future)
            return future
        task = self.task(entry())
        self.running[node_id] += 1
        task.add_done_callback(lambda _: self._actor_ended(node_id))
        return task

    def _actor_ended(self, node_id: str) -> None:
        self.running[node_id] -= 1
        if not self.running[node_id]:
            self.ended.add(node_id)

    def _remote_ended(self, nodes: list[str]) -> None:
        """The launcher says every actor of ``nodes`` (in other processes) has ended."""
        self.remote_ended.update(nodes)
        for node in nodes:
            for future in self.remote.pop(node, []):
                if not future.done():
                    future.set_result(None)

    def spawn(self, actor: Actor) -> asyncio.Task:
        return self.task(actor)

    def retry_delays(self) -> list[float]:
        return list(self.world.retry.delays())

    def task(self, actor: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``actor`` as a task kept until it ends (an error in it is reported)."""
        task = asyncio.get_running_loop().create_task(actor)
        self.tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.error = task.exception()

    async def run_job(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a learning job on the process's one job thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def metric(self, node: str, name: str, value: float) -> None:
        self.metrics.append((self.now, node, name, float(value)))

    def _advance(self, n: float) -> None:
        self.progress += n

    # ------------------------------------------------------------------ messages
    def send(self, message: Message) -> asyncio.Future:
        """Send ``message`` now; the future gives its :class:`LiveDelivery`."""
        loop = asyncio.get_running_loop()
        message.id = self.ids()
        blob = encode(message, self.world.codec)
        data = padded(message, blob)
        path = self.topology.path(message.src, message.dst)
        t_send = self.now
        self.sent[message.id] = {
            "id": message.id, "src": message.src, "dst": message.dst, "kind": message.kind,
            "size": len(blob) if message.size_bytes is None else message.size_bytes,
            "t_send": t_send, "path": path,
            "phase": self.world.network.phase(message.kind),
        }  # fmt: skip
        future = loop.create_future()
        self.pending[message.id] = future
        header = Header(
            "data", message.src, message.dst, message.kind, message.id, len(data), 0, 0, t_send,
            message.reply_to, message.src,
        )  # fmt: skip
        if self.plan.shaping == "none" or len(path) < 2:
            for head, piece in chunks(header, data, UNSHAPED_CHUNK):
                self._hand_over(message.src, message.dst, head, piece, loop.time())
        else:
            link = self._link(path[0], path[1])
            for head, piece in chunks(header, data, chunk_bytes(link.bytes_per_s)):
                self._forward(path[0], head, piece, loop.time())
        return future

    def _link(self, a: str, b: str) -> EmulatedLink:
        if (a, b) not in self.links:  # the simulation's latency phase and capacity of a → b
            network = self.world.network
            latency = network.route_latency(((a, b),))
            self.links[a, b] = EmulatedLink(latency, network.capacity((a, b)), self._drop)
        return self.links[a, b]

    def _drop(self, flow: int) -> None:
        self.dropped.setdefault(flow, self.now)

    def _link_events(self) -> None:
        """Schedule the scenario's link events on the links this process emulates."""
        loop = asyncio.get_running_loop()
        for event in self.world.link_events:
            for a, b in ((event.a, event.b), (event.b, event.a)):
                if self.hosts(a):
                    loop.call_at(self.t0 + event.at, self._link(a, b).set_up, event.up)

    def _forward(self, at: str, header: Header, data: bytes, queued: float) -> None:
        """A chunk is at node ``at`` (hosted here) since ``queued``: deliver it, or put it
        on the next link of its route."""
        if header.id in self.dropped:
            return
        if at == header.dst:
            self._arrived(header, data)
            return
        path = self.topology.path(header.src, header.dst)
        nxt = path[path.index(at) + 1]
        link = self._link(at, nxt)
        link.put(
            Chunk(header.id, len(data), queued, lambda t: self._hand_over(at, nxt, header, data, t))
        )

    def _hand_over(self, frm: str, to: str, header: Header, data: bytes, t: float) -> None:
        """Give a chunk that reached ``to`` at ``t`` to ``to``: here, or over ZeroMQ."""
        if self.hosts(to):
            self._forward(to, header, data, t)
        else:
            self._post(frm, to, replace(header, hop=frm), data)

    def _post(self, frm: str, to: str, header: Header, data: bytes) -> None:
        """Queue a frame pair on the ordered ZeroMQ channel ``frm`` → ``to``."""
        key = (frm, to)
        if key not in self.outboxes:
            self.outboxes[key] = asyncio.Queue()
            self.task(self._drain(frm, to, self.outboxes[key]))
        self.outboxes[key].put_nowait((header, data))

    async def _drain(self, frm: str, to: str, queue: asyncio.Queue) -> None:
        mailbox = self.mailboxes[frm]
        while True:
            header, data = await queue.get()
            await mailbox.send(to, header, data)

    def _arrived(self, header: Header, data: bytes) -> None:
        """A chunk reached its destination (hosted here)."""
        try:
            whole = self.reassembly.add(header, data)
        except BadFrame as exc:
            self.faults[f"bad_frame_{exc.reason}"] += 1
            return
        if whole is None:
            return
        message = unpadded(whole)
        message.id, message.reply_to, message.t_send = header.id, header.reply_to, header.t_send
        t_recv = self.now
        self.received[header.id] = t_recv
        self.nodes[header.dst].put(message)
        delivery = LiveDelivery(header.id, header.dst, DELIVERED, header.t_send, t_recv)
        for listener in self.world.network.listeners:
            listener(delivery)
        ack = Header(
            "ack", header.src, header.dst, header.kind, header.id, 0, 0, zlib.crc32(b""), t_recv,
            None, header.dst,
        )  # fmt: skip
        if self.hosts(header.src):
            self._acked(ack)
        else:
            self._post(header.dst, header.src, ack, b"")

    def _acked(self, ack: Header) -> None:
        future = self.pending.pop(ack.id, None)
        if future is not None and not future.done():
            row = self.sent[ack.id]
            delivery = LiveDelivery(ack.id, ack.dst, DELIVERED, row["t_send"], ack.t_send)
            future.set_result(delivery)

    async def _listen(self, mailbox: Mailbox) -> None:
        loop = asyncio.get_running_loop()
        while True:
            header, data = await mailbox.recv()
            if header.type == "ack":
                self._acked(header)
            elif self.plan.shaping == "none":
                self._arrived(header, data)
            else:
                self._forward(mailbox.node, header, data, loop.time())

    # ------------------------------------------------------------------ the process
    async def serve(self, control: Connection) -> None:
        """Bind the mailboxes, report them, wait for the start, run, report at the end."""
        context = zmq.asyncio.Context()
        keys = Path(self.plan.keys) if self.plan.keys else None
        authenticator = start_authenticator(context, keys) if keys else None
        try:
            for node in self.local:
                bind = (self.plan.addresses or {}).get(node, "tcp://127.0.0.1:*")
                box = Mailbox(context, node, bind, {}, MAX_FRAME_BYTES, keys)
                self.mailboxes[node] = box
            control.send(("ready", {n: m.endpoint for n, m in self.mailboxes.items()}))
            peers, start_at = await _receive(control)
            for box in self.mailboxes.values():
                box.peers.update(peers)
                self.task(self._listen(box))
            await asyncio.sleep(max(0.0, start_at - time.monotonic()))
            self.t0 = start_at
            self._link_events()
            self.workload.start()
            while not await self._stopped(control):
                control.send(("progress", self._status()))
                if self.error is not None:
                    raise self.error
            control.send(("result", self._result()))
        finally:
            for link in self.links.values():
                link.close()
            for task in list(self.tasks):
                task.cancel()
            for box in self.mailboxes.values():
                await box.close()
            if authenticator is not None:
                authenticator.stop()
            context.destroy(linger=0)
            self.executor.shutdown(wait=False, cancel_futures=True)

    def _status(self) -> dict[str, Any]:
        return {
            "progress": self.progress,
            "planned": self.workload.progress_total,
            "received": len(self.received),
            "dropped": list(self.dropped),
            "finished": self.workload.finished,
            "finished_at": self.workload.finished_at,
            "ended": sorted(self.ended),
        }

    def _result(self) -> dict[str, Any]:
        main = self.workload.main_node
        rejected = Counter()
        for box in self.mailboxes.values():
            rejected.update(box.rejected)
        return {
            **self._status(),
            "sent": list(self.sent.values()),
            "received_at": self.received,
            "dropped_at": self.dropped,
            "metrics": self.metrics,
            "faults": dict(self.faults),
            "rejected": dict(rejected),
            "busy_s": {n: self.nodes[n].busy_s for n in self.local},
            "overrun_s": {n: self.nodes[n].overrun_s for n in self.local},
            "waiting": [f"{n} waited for {w}" for n in self.local for w in self.nodes[n].waiting()],
            "part": self.workload.live_part(),
            "main": main is not None and self.hosts(main),
        }

    async def _stopped(self, control: Connection) -> bool:
        """Wait one report period and read the launcher's word: whether to stop."""
        await asyncio.sleep(REPORT_S)
        while control.poll():
            word = control.recv()
            if word == "stop":
                return True
            self._remote_ended(word[1])
        return False


async def _receive(control: Connection) -> Any:
    while not control.poll():
        await asyncio.sleep(0.01)
    return control.recv()


def host_main(plan: HostPlan, control: Connection, threads: int) -> None:
    """Entry point of a host process."""
    torch.set_num_threads(threads)
    try:
        asyncio.run(LiveHost(plan).serve(control))
    except BaseException as exc:  # reported to the launcher, which says it in one line
        control.send(("error", f"process {plan.index}: {type(exc).__name__}: {exc}"))
