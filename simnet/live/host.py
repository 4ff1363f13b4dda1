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
import logging
import math
import resource
import struct
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import torch
import zmq.asyncio

from simnet.actor import DELIVERED, Actor, Runtime
from simnet.config.scenario import MAX_LIVE_MESSAGE_BYTES, Scenario, load_scenario
from simnet.live.links import MAX_CHUNK, Chunk, EmulatedLink, chunk_bytes
from simnet.live.mailbox import Mailbox, Unreachable, start_authenticator
from simnet.live.node import LiveNode
from simnet.live.router import (
    Action,
    Deliver,
    Forward,
    Limits,
    LogLimiter,
    Pass,
    Resolve,
    Router,
)
from simnet.live.wire import Header, chunks
from simnet.wire.codecs import Codec, TopKCodec
from simnet.wire.message import DecodeError, Message, decode, encode
from simnet.workloads import WORKLOADS

T = TypeVar("T")
logger = logging.getLogger("simnet.live")
UNSHAPED_CHUNK = 16 << 20
"""Largest frame of an unshaped message (``--shaping none``), bytes."""
MAX_QUEUED = 64
"""Frame pairs a mailbox holds for its node before it stops reading the network."""
EXPANSION = {"none": 1, "fp16": 4, "int8": 8}
"""How many times its wire size a message of each codec may decode to (fp16 and int8
restore up to float64; top-k: 1 / fraction)."""
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


def unpadded(data: bytes, max_bytes: int | None = None) -> Message:
    """Inverse of :func:`padded` ∘ encode; :class:`~simnet.wire.message.DecodeError` if
    ``data`` is not such a message or its payload would decode to more than ``max_bytes``.
    A message of declared size is its encoding followed by zeros: its safetensors header
    (length in the first 8 bytes) covers no data."""
    if len(data) < 8:
        raise DecodeError("shorter than 8 bytes")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n < len(data):
        try:
            head = decode(data[: 8 + n], max_bytes)
        except DecodeError:
            head = None
        if head is not None and head.size_bytes is not None:
            return head
    return decode(data, max_bytes)


class NodeFailure(RuntimeError):
    """An exception in a host's actors or callbacks, naming the node where it rose."""


def live_limits(scenario: Scenario, largest: int | None) -> Limits:
    """The receivers' bounds: ``live.max_message_bytes`` (default twice the workload's
    ``largest`` message, at most :data:`MAX_LIVE_MESSAGE_BYTES`); a source's partial
    messages may hold two such messages, all of them four."""
    config = scenario.config.live
    most = config.max_message_bytes
    if most is None:
        most = (
            MAX_LIVE_MESSAGE_BYTES if largest is None else min(MAX_LIVE_MESSAGE_BYTES, 2 * largest)
        )
    return Limits(most, 2 * most, 4 * most, config.reassembly_idle_s)


def expansion(codec: Codec) -> int:
    """:data:`EXPANSION` of ``codec`` (top-k: ⌈1 / fraction⌉)."""
    if isinstance(codec, TopKCodec):
        return math.ceil(1 / codec.fraction)
    return EXPANSION[codec.name]


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
        """Times (s) a message was dropped — by a link emulated here, a peer it could not
        be handed to, or (for its sender) a drop notice — by id."""
        self.pending: dict[int, asyncio.Future] = {}
        self.links: dict[tuple[str, str], EmulatedLink] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        self.outboxes: dict[tuple[str, str], asyncio.Queue] = {}
        self.flows: dict[int, Header] = {}
        """The first header of each message put on a link here, by id (for drop notices)."""
        self.log_limiter = LogLimiter()
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
        limits = live_limits(scenario, self.workload.largest_message_bytes)
        decoded = limits.max_message_bytes * expansion(self.world.codec)
        self.router = Router(
            self.local, self.topology.nodes, self.topology.path, plan.shaping == "none",
            limits, partial(unpadded, max_bytes=decoded),
        )  # fmt: skip

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
        task = self.task(entry(), node_id)
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

    def task(self, actor: Coroutine[Any, Any, T], node: str | None = None) -> asyncio.Task[T]:
        """Run ``actor`` (of ``node``, if known) as a task kept until it ends; an error in
        it ends the run, naming the node."""
        task = asyncio.get_running_loop().create_task(actor)
        self.tasks.add(task)
        task.add_done_callback(partial(self._ended, node))
        return task

    def _ended(self, node: str | None, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._fail(node, task.exception())

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
        self.router.sent(message.id, message.src, message.dst)
        header = Header(
            "data", message.src, message.dst, message.kind, message.id, len(data), 0, 0, t_send,
            message.reply_to, message.src,
        )  # fmt: skip
        if self.plan.shaping == "none" or len(path) < 2:
            for head, piece in chunks(header, data, UNSHAPED_CHUNK):
                self._hand_over(message.src, message.dst, head, piece, loop.time())
        else:
            size = chunk_bytes(self._link(path[0], path[1]).bytes_per_s)
            for head, piece in chunks(header, data, size):
                self._act(self.router.local(message.src, head, piece, self.now), loop.time())
        return future

    def _link(self, a: str, b: str) -> EmulatedLink:
        if (a, b) not in self.links:  # the simulation's latency phase and capacity of a → b
            network = self.world.network
            latency = network.route_latency(((a, b),))
            drop = partial(self._link_dropped, a)
            self.links[a, b] = EmulatedLink(latency, network.capacity((a, b)), drop)
        return self.links[a, b]

    def _link_dropped(self, at: str, flow: int) -> None:
        """The link leaving ``at`` dropped message ``flow``."""
        header = self.flows.get(flow)
        if flow in self.dropped or header is None:
            return
        self.dropped[flow] = self.now
        self._act(self.router.link_dropped(at, header, self.now), asyncio.get_running_loop().time())

    def _link_events(self) -> None:
        """Schedule the scenario's link events on the links this process emulates."""
        loop = asyncio.get_running_loop()
        for event in self.world.link_events:
            for a, b in ((event.a, event.b), (event.b, event.a)):
                if self.hosts(a):
                    set_up = partial(self._guarded, a, self._link(a, b).set_up, event.up)
                    loop.call_at(self.t0 + event.at, set_up)

    def _act(self, actions: list[Action], queued: float) -> None:
        """Carry out the router's ``actions``; ``queued``: the monotonic time (s) the frame
        they answer reached its node (a forwarded chunk is queued on its link then)."""
        for action in actions:
            if isinstance(action, Forward):
                self._forward(action, queued)
            elif isinstance(action, Pass):
                self._hand_over(action.at, action.nxt, action.header, b"", queued)
            elif isinstance(action, Deliver):
                self._deliver(action.message, action.t)
            elif isinstance(action, Resolve):
                self._resolve(action)
            elif self.log_limiter.allows(action.reason, self.now):
                logger.warning("%s: dropped a frame: %s (counted in live.rejected_frames)",
                               ",".join(self.local), action.reason)  # fmt: skip

    def _forward(self, action: Forward, queued: float) -> None:
        """Put a data chunk on the link ``action.at → action.nxt`` (unless its message was
        dropped already)."""
        header, data, at, nxt = action.header, action.data, action.at, action.nxt
        if header.id in self.dropped:
            return
        self.flows.setdefault(header.id, header)
        arrive = partial(self._guarded, nxt, self._hand_over, at, nxt, header, data)
        self._link(at, nxt).put(Chunk(header.id, len(data), queued, arrive))

    def _hand_over(self, frm: str, to: str, header: Header, data: bytes, t: float) -> None:
        """Give a frame that reached ``to`` at ``t`` (monotonic s) to ``to``: here, or over
        ZeroMQ."""
        if self.hosts(to):
            self._act(self.router.local(to, header, data, self.now), t)
        else:
            self._post(frm, to, replace(header, hop=frm), data)

    def _post(self, frm: str, to: str, header: Header, data: bytes) -> None:
        """Queue a frame pair on the ordered ZeroMQ channel ``frm`` → ``to``."""
        key = (frm, to)
        if key not in self.outboxes:
            self.outboxes[key] = asyncio.Queue()
            self.task(self._drain(frm, to, self.outboxes[key]), frm)
        self.outboxes[key].put_nowait((header, data))

    async def _drain(self, frm: str, to: str, queue: asyncio.Queue) -> None:
        """Send the channel's frames in order; one that cannot be handed over drops its
        message (the router tells its sender)."""
        mailbox = self.mailboxes[frm]
        while True:
            header, data = await queue.get()
            if header.type == "data" and header.id in self.dropped:
                continue
            try:
                await mailbox.send(to, header, data)
            except (Unreachable, ValueError) as exc:
                if header.type == "data":
                    self.dropped.setdefault(header.id, self.now)
                self.faults["unreachable"] += 1
                logger.warning("%s: %s", frm, exc)
                self._act(self.router.unreachable(frm, header, self.now), time.monotonic())

    def _deliver(self, message: Message, t_recv: float) -> None:
        """A message reached its destination (hosted here)."""
        self.received[message.id] = t_recv
        self.nodes[message.dst].put(message)
        delivery = LiveDelivery(message.id, message.dst, DELIVERED, message.t_send, t_recv)
        for listener in self.world.network.listeners:
            listener(delivery)

    def _resolve(self, action: Resolve) -> None:
        """A message sent from here was delivered or dropped: its ``send`` completes."""
        future = self.pending.pop(action.id, None)
        if future is None or future.done():
            return
        row = self.sent[action.id]
        t_recv = action.t if action.status == DELIVERED else None
        future.set_result(LiveDelivery(action.id, row["dst"], action.status, row["t_send"], t_recv))
        if action.status != DELIVERED:
            self.dropped.setdefault(action.id, action.t)

    async def _listen(self, mailbox: Mailbox) -> None:
        """Route every frame that reaches ``mailbox`` (its sender checked by the mailbox:
        the routing id, and the CURVE key's node, are the frame's ``hop``)."""
        loop = asyncio.get_running_loop()
        while True:
            header, data = await mailbox.recv()
            actions = self.router.frame(mailbox.node, header.hop, header, data, self.now)
            self._act(actions, loop.time())

    def _guarded(self, node: str, fn: Callable[..., Any], *args: Any) -> None:
        """``fn(*args)`` from a loop callback: an exception ends the run, naming ``node``
        (asyncio would only log it)."""
        try:
            fn(*args)
        except Exception as exc:
            self._fail(node, exc)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio's handler of errors it cannot hand to anyone: they end the run."""
        exc = context.get("exception") or RuntimeError(context.get("message", "loop error"))
        self._fail(None, exc)

    def _fail(self, node: str | None, exc: BaseException) -> None:
        """Record the first failure of the process; :meth:`serve` ends the run with it."""
        if self.error is None:
            where = f"node {node}: " if node else ""
            self.error = NodeFailure(f"{where}{type(exc).__name__}: {exc}")
            self.error.__cause__ = exc

    # ------------------------------------------------------------------ the process
    async def serve(self, control: Connection) -> None:
        """Bind the mailboxes, report them, wait for the start, run, report at the end."""
        context = zmq.asyncio.Context()
        keys = Path(self.plan.keys) if self.plan.keys else None
        frame = UNSHAPED_CHUNK if self.plan.shaping == "none" else MAX_CHUNK
        authenticator = start_authenticator(context, keys) if keys else None
        try:
            for node in self.local:
                bind = (self.plan.addresses or {}).get(node, "tcp://127.0.0.1:*")
                box = Mailbox(context, node, bind, {}, frame, keys, max_queued=MAX_QUEUED)
                self.mailboxes[node] = box
            control.send(("ready", {n: m.endpoint for n, m in self.mailboxes.items()}))
            peers, start_at = await _receive(control)
            for box in self.mailboxes.values():
                box.peers.update(peers)
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(self._loop_error)
            # every process starts its clock at the one announced instant; frames that come
            # earlier wait in the mailboxes (bounded) until the listeners start
            await asyncio.sleep(max(0.0, start_at - time.monotonic()))
            self.t0 = start_at
            for box in self.mailboxes.values():
                self.task(self._listen(box), box.node)
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
        rejected = Counter(self.router.rejected)
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
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "evicted_partials": self.router.reassembly.evicted,
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
        nodes = ", ".join(n for n, k in plan.assignment.items() if k == plan.index)
        what = str(exc) if isinstance(exc, NodeFailure) else f"{type(exc).__name__}: {exc}"
        control.send(("error", f"process {plan.index} ({nodes}): {what}"))
