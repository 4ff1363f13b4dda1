"""The control channel between the launchers of one live run across machines.

Each machine runs ``simnet live SCENARIO --hosts FILE --only NODES``. The launcher whose
``--only`` holds the hosts file's first node *coordinates*: it binds the file's
``control: host:port`` (a ZeroMQ ROUTER); every other launcher *follows* (a DEALER
connected to it). Messages are JSON objects of at most :data:`MAX_MESSAGE_BYTES` bytes,
never pickle; each carries ``type`` and ``nodes`` (the sender's nodes) and exactly its
type's fields::

    follower → coordinator              coordinator → follower
    hello   run, ready  until the start     wait   missing     until all nodes are ready
    status  status      from the start on   run    at, status  from the start on
    bye                 on stopping         stop   reason      once the run is done
    abort   error       on failing          abort  error       on failing, or relayed

``run`` is a fingerprint of what the launcher runs (scenario as run, hosts file,
shaping, CURVE; :func:`fingerprint`): a follower running something else is refused.
``status`` is a launcher's :func:`combined` process reports (``null`` before they all
came); the coordinator's ``run`` carries every launcher's combined, from which it alone
decides when the run is done (the rule of :mod:`simnet.live.launch`); it then sends
``stop`` until every follower said ``bye``. ``at`` is the start instant on the wall clock
(``time.time()``, seconds), which each launcher turns into its own monotonic clock: the
machines' clocks must agree (NTP) for times measured on two machines to be comparable.
A message that fails validation is dropped and counted by reason in
:attr:`Control.rejected`, never a crash.

Each side sends one message every :data:`HEARTBEAT_S` seconds. A launcher heard from
once and then silent for :data:`HEARTBEAT_TIMEOUT_S` seconds is lost: the others end with
one error naming its nodes (a follower that never hears from the coordinator gives up
after the ready timeout). With CURVE the channel is encrypted and authenticated with the
node keys: a launcher holds the key pair of its first node in hosts-file order, the
coordinator accepts the public keys of the key folder and checks that a follower's key
is one of the nodes it claims.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from simnet.live.keys import load_public, load_secret, public_keys

Status = dict[str, Any]
"""A progress report: ``progress``, ``planned``, ``received``, ``dropped`` (ids),
``finished``, ``ended`` (nodes whose actors have all ended)."""

HEARTBEAT_S = 0.2
"""Seconds between two messages of a launcher."""
HEARTBEAT_TIMEOUT_S = 5.0
"""Seconds of silence after which a launcher is lost."""
START_DELAY_S = 0.5
"""Seconds between announcing the start instant and the start."""
MAX_MESSAGE_BYTES = 16 << 20
"""Largest control message accepted, bytes."""
MAX_TEXT = 2000
"""Longest text field (an error, a fingerprint), characters."""
QUEUED = 100
"""Messages queued per peer (beyond: dropped; a heartbeat says it again), also while a
follower is not connected yet (not ZMQ_IMMEDIATE: that discards what a peer sent just
before it closed, such as an abort)."""
LINGER_MS = 2000
"""How long closing a socket may wait to deliver its last messages, milliseconds."""


@dataclass(frozen=True)
class Stop:
    """The word to stop: ``reason`` why the run is incomplete (``None``: it is done)."""

    reason: str | None


class BadMessage(ValueError):
    """A control message that fails validation; ``reason`` is a short tag."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def fingerprint(scenario: dict[str, Any], hosts: dict[str, str], options: dict[str, Any]) -> str:
    """What must be equal across the launchers of one run, as a SHA-256 hex digest."""
    text = json.dumps([scenario, hosts, options], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def combined(statuses: Iterable[Status]) -> Status:
    """One :data:`Status` for several parts of a run (processes, or launchers)."""
    statuses = list(statuses)
    return {
        "progress": sum(s["progress"] for s in statuses),
        "planned": statuses[0]["planned"],
        "received": sum(s["received"] for s in statuses),
        "dropped": sorted({i for s in statuses for i in s["dropped"]}),
        "finished": all(s["finished"] for s in statuses),
        "ended": sorted({n for s in statuses for n in s["ended"]}),
    }


def nodes_text(nodes: Iterable[str]) -> str:
    """``a, b, c``."""
    return ", ".join(nodes)


# ---------------------------------------------------------------------- validation
Check = Callable[[Any], bool]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _list(item: Check) -> Check:
    return lambda value: isinstance(value, list) and all(item(v) for v in value)


def _maybe(check: Check) -> Check:
    return lambda value: value is None or check(value)


STATUS_FIELDS: dict[str, Check] = {
    "progress": _number, "planned": _number, "received": _count, "dropped": _list(_count),
    "finished": _flag, "ended": _list(_text),
}  # fmt: skip


def _status(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.keys() == STATUS_FIELDS.keys()
        and all(check(value[k]) for k, check in STATUS_FIELDS.items())
    )


TO_COORDINATOR: dict[str, dict[str, Check]] = {
    "hello": {"run": _text, "ready": _flag},
    "status": {"status": _maybe(_status)},
    "bye": {},
    "abort": {"error": _text},
}
TO_FOLLOWER: dict[str, dict[str, Check]] = {
    "wait": {"missing": _list(_text)},
    "run": {"at": _number, "status": _maybe(_status)},
    "stop": {"reason": _maybe(_text)},
    "abort": {"error": _text},
}


def parse(data: bytes, types: dict[str, dict[str, Check]], known: frozenset[str]) -> dict:
    """The valid message in ``data`` (one of ``types``, naming only ``known`` nodes), else
    :class:`BadMessage`."""
    try:
        message = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BadMessage("json") from None
    if not isinstance(message, dict) or message.get("type") not in types:
        raise BadMessage("type")
    fields = types[message["type"]]
    if message.keys() != {"type", "nodes", *fields}:
        raise BadMessage("fields")
    if not all(check(message[k]) for k, check in fields.items()):
        raise BadMessage("value")
    named = [message["nodes"], message.get("missing", [])]
    status = message.get("status")
    if status is not None:
        named.append(status["ended"])
    if not _list(_text)(message["nodes"]) or not all(set(n) <= known for n in named):
        raise BadMessage("nodes")
    return message


def _encode(kind: str, nodes: list[str], **fields: Any) -> bytes:
    return json.dumps({"type": kind, "nodes": nodes, **fields}).encode()


def one_line(text: str) -> str:
    """``text`` on one line, at most :data:`MAX_TEXT` characters."""
    return " ".join(text.split())[:MAX_TEXT]


# ---------------------------------------------------------------------- the two roles
class Control(ABC):
    """One launcher's end of the control channel (see the module docstring).

    ``nodes``: the launcher's own; ``known``: every node of the topology; ``run``: its
    :func:`fingerprint`. The launcher's loop calls :meth:`starting` until it gives the
    start instant, :meth:`tick` while the run goes, :meth:`stop` once, :meth:`finish`
    after collecting its results, then :meth:`close`; :meth:`abort` when it fails. They
    raise ``RuntimeError`` when another launcher failed or is lost."""

    socket_type: int
    frames: int
    """Frames of a received message: a ROUTER's peer id and payload, a DEALER's payload."""
    types: dict[str, dict[str, Check]]
    """The messages this end accepts."""

    def __init__(self, nodes: list[str], known: frozenset[str], run: str) -> None:
        self.nodes = nodes
        self.known = known
        self.run = run
        self.context = zmq.Context()
        self.socket: zmq.Socket = self.context.socket(self.socket_type)
        self.socket.setsockopt(zmq.LINGER, LINGER_MS)
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.socket.setsockopt(zmq.SNDHWM, QUEUED)
        self.authenticator: ThreadAuthenticator | None = None
        self.rejected: Counter[str] = Counter()
        """Control messages dropped, by reason."""
        self.at: float | None = None
        """The start instant, wall-clock seconds."""
        self.overall: Status | None = None
        """The whole run's status, as last known."""
        self.verdict: Stop | None = None
        """The word to stop, once given."""
        self.created = time.monotonic()
        self._beat = 0.0
        self._over = False
        """Whether this end said or heard that the run failed."""

    @property
    def ended(self) -> set[str]:
        """Nodes whose actors have ended, on any machine."""
        return set(self.overall["ended"]) if self.overall else set()

    def starting(self, ready: bool) -> float | None:
        """Exchange messages before the start (``ready``: this launcher's processes have
        all bound their mailboxes); the start instant (wall clock, s) once agreed."""
        self._exchange(None, ready)
        return self.at

    def tick(self, local: Status | None) -> None:
        """Exchange messages while the run goes (``local``: this launcher's status)."""
        self._exchange(local, True)

    def deciding(self) -> Status | None:
        """The whole run's status if this launcher decides when it is done and knows every
        launcher's, else ``None``."""
        return None

    def stop(self, reason: str | None) -> None:
        """This launcher stops its processes (``reason``: why the run is incomplete)."""
        self.verdict = self.verdict or Stop(reason)

    @abstractmethod
    def finish(self) -> None:
        """After stopping, make sure the others know."""

    def abort(self, error: str) -> None:
        """Tell the others this launcher failed with ``error`` (not if it heard of a
        failure from them)."""
        if not self._over:
            self._over = True
            self._send_all(_encode("abort", self.nodes, error=one_line(error)))

    def close(self) -> None:
        """Close the socket (its last messages get :data:`LINGER_MS` to go out)."""
        if self.authenticator is not None:
            self.authenticator.stop()
        self.socket.close()
        self.context.term()

    def _exchange(self, local: Status | None, ready: bool) -> None:
        """Handle what came, check the others are alive, send a heartbeat when due."""
        for peer, frame in self._receive():
            try:
                self._handle(peer, parse(frame.bytes, self.types, self.known), frame)
            except BadMessage as exc:
                self.rejected[exc.reason] += 1
        self._check()
        now = time.monotonic()
        if now - self._beat >= HEARTBEAT_S:
            self._beat = now
            self._heartbeat(local, ready)

    def _receive(self) -> list[tuple[bytes, zmq.Frame]]:
        """The messages waiting, as (peer id, payload); at most 1000 at a time."""
        out = []
        while len(out) < 1000:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            if len(frames) != self.frames:
                self.rejected["frames"] += 1
                continue
            out.append((frames[0].bytes if self.frames == 2 else b"", frames[-1]))
        return out

    def _send(self, frames: list[bytes]) -> None:
        with contextlib.suppress(zmq.Again):  # not connected yet, or slow: the next beat retries
            self.socket.send_multipart(frames, zmq.NOBLOCK)

    def _failed(self, error: str) -> RuntimeError:
        self._over = True
        return RuntimeError(error)

    @abstractmethod
    def _send_all(self, data: bytes) -> None:
        """Send ``data`` to every other launcher this end talks to."""

    @abstractmethod
    def _handle(self, peer: bytes, message: dict, frame: zmq.Frame) -> None:
        """Act on a valid ``message`` from ``peer`` (``frame``: its payload)."""

    @abstractmethod
    def _check(self) -> None:
        """Raise ``RuntimeError`` if another launcher is lost."""

    @abstractmethod
    def _heartbeat(self, local: Status | None, ready: bool) -> None:
        """Send this end's periodic message."""


@dataclass
class _Follower:
    """What the coordinator knows of a follower: its nodes, when it was last heard
    (monotonic, s), whether its processes are ready, its status, whether it stopped."""

    nodes: list[str]
    heard: float
    ready: bool = False
    status: Status | None = None
    bye: bool = False


class Coordinator(Control):
    """The coordinating launcher's end: binds ``endpoint``; with ``keys`` (a key folder)
    serves CURVE with the key pair of ``key_node`` and admits the folder's public keys."""

    socket_type = zmq.ROUTER
    frames = 2
    types = TO_COORDINATOR

    def __init__(
        self, nodes: list[str], known: frozenset[str], run: str, endpoint: str,
        keys: Path | None, key_node: str, ready_timeout_s: float,
    ) -> None:  # fmt: skip
        super().__init__(nodes, known, run)
        self.ready_timeout_s = ready_timeout_s
        self.followers: dict[bytes, _Follower] = {}
        self.ready = False
        self.keys = public_keys(keys) if keys is not None else None
        try:
            if keys is not None:
                self.authenticator = ThreadAuthenticator(self.context)
                self.authenticator.start()
                self.authenticator.configure_curve(domain="*", location=str(keys))
                self.socket.setsockopt(zmq.CURVE_SERVER, 1)
                self.socket.setsockopt(zmq.CURVE_SECRETKEY, load_secret(keys, key_node)[1])
            self.socket.bind(endpoint)
        except BaseException:
            self.close()
            raise

    def missing(self) -> list[str]:
        """Nodes no ready launcher runs yet, sorted."""
        ready = set(self.nodes) if self.ready else set()
        ready |= {n for f in self.followers.values() if f.ready for n in f.nodes}
        return sorted(self.known - ready)

    def starting(self, ready: bool) -> float | None:
        self.ready = ready
        super().starting(ready)
        if self.at is None and not self.missing():
            self.at = time.time() + START_DELAY_S
            self._beat = 0.0  # announce it now
            self._exchange(None, True)
        elif self.at is None and time.monotonic() - self.created > self.ready_timeout_s:
            missing = nodes_text(self.missing())
            raise self._failed(
                f"the launchers of {missing} did not report within {self.ready_timeout_s:g} s"
            )
        return self.at

    def tick(self, local: Status | None) -> None:
        reports = [local, *(f.status for f in self.followers.values())]
        if all(s is not None for s in reports):
            self.overall = combined(reports)  # type: ignore[arg-type]
        super().tick(local)

    def deciding(self) -> Status | None:
        return self.overall

    def stop(self, reason: str | None) -> None:
        super().stop(reason)
        self._send_all(_encode("stop", self.nodes, reason=reason))

    def finish(self) -> None:
        """Wait until every follower has said bye (``RuntimeError`` if one is lost)."""
        while not all(f.bye for f in self.followers.values()):
            self.socket.poll(HEARTBEAT_S * 1000)
            self._exchange(None, True)

    def _send_all(self, data: bytes) -> None:
        for peer, follower in self.followers.items():
            if not follower.bye:
                self._send([peer, data])

    def _heartbeat(self, local: Status | None, ready: bool) -> None:
        if self.verdict is not None:
            message = _encode("stop", self.nodes, reason=self.verdict.reason)
        elif self.at is None:
            message = _encode("wait", self.nodes, missing=self.missing())
        else:
            message = _encode("run", self.nodes, at=self.at, status=self.overall)
        self._send_all(message)

    def _check(self) -> None:
        now = time.monotonic()
        for follower in self.followers.values():
            if not follower.bye and now - follower.heard > HEARTBEAT_TIMEOUT_S:
                raise self._failed(
                    f"no word for {HEARTBEAT_TIMEOUT_S:g} s from the launcher of "
                    f"{nodes_text(follower.nodes)}"
                )

    def _handle(self, peer: bytes, message: dict, frame: zmq.Frame) -> None:
        follower = self.followers.get(peer)
        if follower is None:
            if message["type"] != "hello":
                raise BadMessage("unknown")
            follower = self._admit(peer, message, frame)
        elif message["nodes"] != follower.nodes:
            raise BadMessage("nodes")
        follower.heard = time.monotonic()
        kind = message["type"]
        if kind == "hello":
            follower.ready = message["ready"]
        elif kind == "status":
            follower.status = message["status"]
        elif kind == "bye":
            follower.bye = True
        elif kind == "abort":
            self._send_all(_encode("abort", self.nodes, error=message["error"]))
            raise self._failed(message["error"])

    def _admit(self, peer: bytes, hello: dict, frame: zmq.Frame) -> _Follower:
        """A new follower, or :class:`BadMessage` if it is refused (it is told why)."""
        nodes = hello["nodes"]
        taken = set(self.nodes) | {n for f in self.followers.values() for n in f.nodes}
        refusal = None
        if hello["run"] != self.run:
            refusal = "run", "runs another scenario, seed, hosts file or options"
        elif not nodes or len(set(nodes)) < len(nodes) or taken & set(nodes):
            refusal = "nodes", "claims a node another launcher runs"
        elif self.keys is not None and self._signer(frame) not in nodes:
            refusal = "key", "signs with the key of a node it does not run"
        if refusal is not None:
            error = f"the coordinator refused the launcher of {nodes_text(nodes)}: it {refusal[1]}"
            self._send([peer, _encode("abort", self.nodes, error=error)])
            raise BadMessage(refusal[0])
        self.followers[peer] = _Follower(list(nodes), time.monotonic())
        return self.followers[peer]

    def _signer(self, frame: zmq.Frame) -> str | None:
        """The node whose CURVE key sent ``frame`` (its ZAP User-Id is the Z85 key)."""
        try:
            user = frame.get("User-Id")
        except zmq.ZMQError:
            return None
        return self.keys.get(user.encode()) if self.keys is not None and user else None


class Follower(Control):
    """A following launcher's end: connects to the coordinator at ``endpoint``, which
    runs ``head`` (the hosts file's first node); with ``keys`` (a key folder)
    authenticates with the key pair of ``key_node`` and expects ``head``'s key."""

    socket_type = zmq.DEALER
    frames = 1
    types = TO_FOLLOWER

    def __init__(
        self, nodes: list[str], known: frozenset[str], run: str, endpoint: str,
        keys: Path | None, key_node: str, head: str, ready_timeout_s: float,
    ) -> None:  # fmt: skip
        super().__init__(nodes, known, run)
        self.endpoint = endpoint
        self.head = head
        self.ready_timeout_s = ready_timeout_s
        self.coordinator: list[str] | None = None
        """The coordinator's nodes, once heard from."""
        self.heard = 0.0
        try:
            if keys is not None:
                public, secret = load_secret(keys, key_node)
                self.socket.setsockopt(zmq.CURVE_SERVERKEY, load_public(keys, head))
                self.socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
                self.socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
            self.socket.connect(endpoint)
        except BaseException:
            self.close()
            raise

    def stop(self, reason: str | None) -> None:
        super().stop(reason)
        self._send_all(_encode("bye", self.nodes))

    def finish(self) -> None:
        """Nothing left: the bye went out on :meth:`stop`."""

    def _send_all(self, data: bytes) -> None:
        self._send([data])

    def _heartbeat(self, local: Status | None, ready: bool) -> None:
        if self.verdict is not None:
            return
        if self.at is None:
            self._send_all(_encode("hello", self.nodes, run=self.run, ready=ready))
        else:
            self._send_all(_encode("status", self.nodes, status=local))

    def _check(self) -> None:
        now = time.monotonic()
        if self.coordinator is None:
            if now - self.created > self.ready_timeout_s:
                raise self._failed(
                    f"no word from the coordinating launcher (of {self.head}) at "
                    f"{self.endpoint} within {self.ready_timeout_s:g} s"
                )
        elif self.verdict is None and now - self.heard > HEARTBEAT_TIMEOUT_S:
            raise self._failed(
                f"no word for {HEARTBEAT_TIMEOUT_S:g} s from the launcher of "
                f"{nodes_text(self.coordinator)}"
            )

    def _handle(self, peer: bytes, message: dict, frame: zmq.Frame) -> None:
        if self.head not in message["nodes"]:
            raise BadMessage("nodes")
        self.coordinator = message["nodes"]
        self.heard = time.monotonic()
        kind = message["type"]
        if kind == "run":
            self.at = message["at"]
            self.overall = message["status"] or self.overall
        elif kind == "stop":
            self.verdict = self.verdict or Stop(message["reason"])
        elif kind == "abort":
            raise self._failed(message["error"])
