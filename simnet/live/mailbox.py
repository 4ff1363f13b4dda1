"""One node's ZeroMQ sockets in live mode, optionally authenticated and encrypted by CURVE.

Each node binds a ROUTER in-socket and sends through a second ROUTER out-socket that
connects to peers lazily; both carry the node id as routing id. Every received multipart
is checked with :func:`~simnet.live.wire.parse_frames` and dropped (counted by reason in
:attr:`Mailbox.rejected`, logged to ``simnet.live`` at most once a second per reason) when
bad.

Memory is bounded: libzmq drops the connection of a peer sending a frame of more than
``max_frame_bytes`` + :data:`FRAME_SLACK_BYTES` before allocating it (the frame is lost
and not counted: libzmq reports only a disconnect; the peer reconnects), at most
``hwm`` multiparts wait in each socket's pipe per peer, and at most ``max_queued`` valid
frame pairs wait for :meth:`Mailbox.recv`. When that queue is full the reader stops
reading, the pipes fill, and libzmq stops reading from the network: a slow consumer slows
its senders down rather than growing memory. Nothing is ever read from the out-socket, so
it takes no frame of more than :data:`FRAME_SLACK_BYTES`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator
from zmq.utils import z85

from simnet.live.keys import load_public, load_secret, public_keys
from simnet.live.router import LogLimiter
from simnet.live.wire import BadFrame, Header, encode_frames, parse_frames

logger = logging.getLogger("simnet.live")

MiB = 1 << 20
FRAME_SLACK_BYTES = 64 << 10
"""How far beyond ``max_frame_bytes`` a frame may be and still be received (then counted
as ``"size"``), bytes; room for CURVE's framing too."""
_BACKOFF_S = (0.001, 0.05)
_authenticated: weakref.WeakSet[zmq.Context] = weakref.WeakSet()


class Unreachable(ConnectionError):
    """A peer did not take a frame within the connect timeout."""


class _NodeAuthenticator(AsyncioAuthenticator):
    """Allows exactly the given CURVE keys; a connection's ZAP User-Id is its node id."""

    def __init__(self, context: zmq.asyncio.Context, nodes: dict[bytes, str]) -> None:
        super().__init__(context=context)
        self._nodes = nodes
        self.configure_curve_callback("*", credentials_provider=self)

    def callback(self, domain: str, key: bytes) -> bool:
        """Whether the Z85 client ``key`` belongs to a node."""
        return key in self._nodes

    def curve_user_id(self, client_public_key: bytes) -> str:
        """The node id owning the (binary) client key."""
        return self._nodes[z85.encode(client_public_key)]

    def stop(self) -> None:
        """Stop answering ZAP requests on this context."""
        super().stop()
        _authenticated.discard(self.context)


def start_authenticator(context: zmq.asyncio.Context, keys: Path) -> AsyncioAuthenticator:
    """Start the context's ZAP handler allowing exactly the public keys in ``keys`` (a
    folder made by :func:`~simnet.live.keys.write_keys`); once per context, inside a
    running event loop. The User-Id of every authenticated frame is the sender's node id."""
    if context in _authenticated:
        raise RuntimeError("an authenticator already runs on this context")
    nodes = public_keys(keys)
    if not nodes:
        raise ValueError(f"no *.key files in {keys}")
    auth = _NodeAuthenticator(context, nodes)
    auth.start()
    _authenticated.add(context)
    return auth


class Mailbox:
    """One node's in- and out-sockets; construct inside a running event loop.

    ``bind``: the in-socket's endpoint (``tcp://127.0.0.1:*`` picks a free port; the bound
    one is :attr:`endpoint`). ``peers``: node id -> endpoint (:attr:`peers` may be extended
    before the first send to a peer). ``max_frame_bytes``: per received frame.
    ``keys``: a key folder for CURVE (needs :func:`start_authenticator` on ``context``).
    ``connect_timeout_s``: how long a send waits for an unreachable peer, seconds.
    ``hwm``: the high-water mark of both sockets, multiparts per peer (at most about
    ``hwm × max_frame_bytes`` wait in each direction of each connection).
    ``max_queued``: valid frame pairs held for :meth:`recv`.
    ``ValueError`` if ``keys`` lacks this node's secret or it is exposed.
    """

    def __init__(
        self,
        context: zmq.asyncio.Context,
        node: str,
        bind: str,
        peers: Mapping[str, str],
        max_frame_bytes: int = 64 * MiB,
        keys: Path | None = None,
        connect_timeout_s: float = 10.0,
        hwm: int = 64,
        max_queued: int = 1024,
    ) -> None:
        if keys is not None and context not in _authenticated:
            raise RuntimeError("CURVE needs start_authenticator(context, keys) first")
        self.node = node
        self.peers = dict(peers)
        self.max_frame_bytes = max_frame_bytes
        self.connect_timeout_s = connect_timeout_s
        self.rejected: Counter[str] = Counter()
        self._keys = keys
        self._connected: set[str] = set()
        self._log = LogLimiter()
        self._queue: asyncio.Queue[tuple[Header, bytes]] = asyncio.Queue(max_queued)
        self._inbox = context.socket(zmq.ROUTER)
        self._outbox = context.socket(zmq.ROUTER)
        try:
            for sock in (self._inbox, self._outbox):
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.ROUTING_ID, node.encode())
                sock.setsockopt(zmq.RCVHWM, hwm)
                sock.setsockopt(zmq.SNDHWM, hwm)
            self._inbox.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes + FRAME_SLACK_BYTES)
            self._outbox.setsockopt(zmq.MAXMSGSIZE, FRAME_SLACK_BYTES)
            self._outbox.setsockopt(zmq.ROUTER_MANDATORY, 1)
            if keys is not None:
                public, secret = load_secret(keys, node)
                self._inbox.setsockopt(zmq.CURVE_SERVER, 1)
                self._inbox.setsockopt(zmq.CURVE_SECRETKEY, secret)
                self._outbox.setsockopt(zmq.CURVE_PUBLICKEY, public)
                self._outbox.setsockopt(zmq.CURVE_SECRETKEY, secret)
            self._inbox.bind(bind)
        except BaseException:
            self._inbox.close(linger=0)
            self._outbox.close(linger=0)
            raise
        self.endpoint: str = self._inbox.getsockopt_string(zmq.LAST_ENDPOINT)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def alive(self) -> bool:
        """Whether the reader task still runs."""
        return not self._reader.done()

    async def recv(self) -> tuple[Header, bytes]:
        """The next valid ``(header, data)`` frame pair."""
        return await self._queue.get()

    async def send(self, peer: str, header: Header, data: bytes) -> None:
        """Send one frame pair to ``peer``, connecting on first use and retrying (1 ms
        doubling to 50 ms) while it is unreachable; waits while the peer's pipe is at its
        high-water mark. ``ValueError`` if ``peer`` is not in :attr:`peers` (or, with CURVE,
        has no public key); :class:`Unreachable` after ``connect_timeout_s`` seconds
        without a connection; ``zmq.ZMQError`` if the socket fails otherwise. A frame of
        more than the peer's ``max_frame_bytes`` + :data:`FRAME_SLACK_BYTES` is sent but
        lost (the peer drops the connection)."""
        endpoint = self.peers.get(peer)
        if endpoint is None:
            raise ValueError(f"{self.node}: unknown peer {peer!r}")
        if peer not in self._connected:
            if self._keys is not None:
                self._outbox.setsockopt(zmq.CURVE_SERVERKEY, load_public(self._keys, peer))
            self._outbox.connect(endpoint)
            self._connected.add(peer)
        frames = [peer.encode(), *encode_frames(header, data)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout_s
        delay, max_delay = _BACKOFF_S
        while True:
            try:
                await self._outbox.send_multipart(frames, copy=False)
                return
            except zmq.Again:  # the peer's pipe is full: flow control, not a lost peer
                await asyncio.sleep(delay)
                delay = min(2 * delay, max_delay)
                continue
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EHOSTUNREACH:
                    raise
            if loop.time() >= deadline:
                raise Unreachable(
                    f"{self.node}: peer {peer!r} at {endpoint} unreachable "
                    f"for {self.connect_timeout_s:g} s"
                )
            await asyncio.sleep(delay)
            delay = min(2 * delay, max_delay)

    async def close(self) -> None:
        """Stop the reader and close both sockets without lingering."""
        self._reader.cancel()
        await asyncio.wait([self._reader])
        self._inbox.close(linger=0)
        self._outbox.close(linger=0)

    def _check(self, parts: list[zmq.Frame]) -> tuple[Header, bytes]:
        """The valid frame pair in ``[sender, header, data]``, else :class:`BadFrame`."""
        header, data = parse_frames([part.buffer for part in parts[1:]], self.max_frame_bytes)
        if self._keys is not None:
            try:
                user = parts[1].get("User-Id")
            except zmq.ZMQError:
                user = None
            if user != header.hop:
                raise BadFrame("forged")
        if parts[0].bytes != header.hop.encode():
            raise BadFrame("hop")
        return header, data

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                parts = await self._inbox.recv_multipart(copy=False)
            except zmq.ZMQError as exc:
                logger.error("%s: in-socket failed, reader stops: %s", self.node, exc)
                return
            try:
                frame = self._check(parts)
            except BadFrame as exc:
                self._reject(exc.reason, parts, loop.time())
                continue
            except Exception:  # a bug must not take the node down; the frame is dropped
                self._reject("error", parts, loop.time(), exc_info=True)
                continue
            await self._queue.put(frame)  # waits while the consumer is behind

    def _reject(
        self, reason: str, parts: list[zmq.Frame], now: float, exc_info: bool = False
    ) -> None:
        """Count a dropped frame; log it unless a line for ``reason`` was logged in the
        last second (``now``: loop time, seconds)."""
        self.rejected[reason] += 1
        if self._log.allows(reason, now):
            logger.warning(
                "%s: dropped a frame from %r: %s (%d so far)",
                self.node,
                parts[0].bytes[:64],
                reason,
                self.rejected[reason],
                exc_info=exc_info,
            )
