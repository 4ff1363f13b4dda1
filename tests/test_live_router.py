"""The live router without sockets: routing, acks, drop notices, rejects, bounds; fuzzed."""

from __future__ import annotations

import zlib
from dataclasses import replace

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from simnet.actor import DELIVERED, DROPPED
from simnet.live.host import padded, unpadded
from simnet.live.reassembly import Reassembly
from simnet.live.router import (
    EMPTY_CRC,
    Deliver,
    Forward,
    Limits,
    LogLimiter,
    Pass,
    Reject,
    Resolve,
    Router,
)
from simnet.live.wire import BadFrame, Header, chunks
from simnet.wire.codecs import Codec
from simnet.wire.message import Message, encode

NODES = ("e", "x", "c")
"""A line e – x – c (end, edge, cloud)."""
LIMITS = Limits(max_message_bytes=4096, per_source_bytes=8192, total_bytes=12288, idle_s=5.0)


def path(a: str, b: str) -> tuple[str, ...]:
    """The route along the line."""
    if a not in NODES or b not in NODES:
        raise KeyError(a if a not in NODES else b)
    i, j = NODES.index(a), NODES.index(b)
    return NODES[i : j + 1] if i <= j else NODES[j : i + 1][::-1]


def router(local: tuple[str, ...], unshaped: bool = False) -> Router:
    return Router(local, NODES, path, unshaped, LIMITS, unpadded)


def message_frames(
    src: str = "e", dst: str = "c", id: int = 7, size: int | None = None, chunk: int = 10_000
) -> list[tuple[Header, bytes]]:
    """The frames of one message as its sender cuts them."""
    payload = {} if size is not None else {"w": torch.arange(6, dtype=torch.float32)}
    message = Message(src, dst, "model", payload, {"round": 1}, size_bytes=size)
    data = padded(message, encode(message, Codec()))
    head = Header("data", src, dst, "model", id, len(data), 0, 0, 0.5, None, src)
    return list(chunks(head, data, chunk))


def kinds(actions: list) -> list[type]:
    return [type(a) for a in actions]


def test_a_message_crosses_its_route_is_delivered_and_acknowledged_back():
    end, edge, cloud = router(("e",)), router(("x",)), router(("c",))
    end.sent(7, "e", "c")
    (frame,) = message_frames()
    (fwd,) = end.local("e", *frame, now=0.0)
    assert isinstance(fwd, Forward) and (fwd.at, fwd.nxt) == ("e", "x")
    header = replace(fwd.header, hop="e")
    (fwd2,) = edge.frame("x", "e", header, fwd.data, now=0.1)
    assert (fwd2.at, fwd2.nxt) == ("x", "c")
    deliver, ack = cloud.frame("c", "x", replace(fwd2.header, hop="x"), fwd2.data, now=0.2)
    assert isinstance(deliver, Deliver) and deliver.message.payload["w"].tolist() == list(range(6))
    assert (deliver.message.id, deliver.message.t_send, deliver.t) == (7, 0.5, 0.2)
    assert isinstance(ack, Pass) and (ack.at, ack.nxt, ack.header.type) == ("c", "x", "ack")
    (ack2,) = edge.frame("x", "c", ack.header, b"", now=0.3)
    assert (ack2.at, ack2.nxt) == ("x", "e")
    (done,) = end.frame("e", "x", ack2.header, b"", now=0.4)
    assert done == Resolve(7, DELIVERED, 0.2)
    assert not end.pending and not any(r.rejected for r in (end, edge, cloud))


def test_a_message_of_declared_size_comes_back_from_its_padding():
    frames = message_frames(size=3000, chunk=1000)
    assert len(frames) == 3 and sum(len(d) for _, d in frames) == 3000
    cloud = router(("c",))
    out = []
    for header, data in frames:
        out += cloud.frame("c", "x", replace(header, hop="x"), data, now=0.0)
    deliver = out[0]
    assert isinstance(deliver, Deliver) and deliver.message.size_bytes == 3000


def test_frames_off_their_route_or_from_the_wrong_peer_are_rejected():
    (frame,) = message_frames()
    header, data = frame
    cloud = router(("c",))
    cases = {
        "hop": cloud.frame("c", "e", replace(header, hop="e"), data, 0.0),  # skipped x
        "peer": cloud.frame("c", "e", replace(header, hop="x"), data, 0.0),  # key of e
        "not on route": router(("x",)).frame("x", "c", replace(header, dst="e"), data, 0.0),
        "unknown node": cloud.frame("c", "x", replace(header, src="zz", hop="x"), data, 0.0),
        "too large": cloud.frame("c", "x", replace(header, hop="x", bytes=5000), data, 0.0),
    }
    for reason, actions in cases.items():
        assert actions == [Reject(reason)], reason
    assert sum(cloud.rejected.values()) == 4


def test_an_ack_is_taken_only_from_the_destination_for_a_pending_message():
    end = router(("e",))
    end.sent(7, "e", "c")
    ack = Header("ack", "e", "c", "model", 7, 0, 0, EMPTY_CRC, 1.0, None, "x")
    assert end.frame("e", "x", replace(ack, id=8), b"", 1.0) == [Reject("not pending")]
    forged = replace(ack, dst="x")  # x acknowledges as if the message were its own
    assert end.frame("e", "x", forged, b"", 1.0) == [Reject("not pending")]
    assert end.frame("e", "c", replace(ack, hop="c"), b"", 1.0) == [Reject("hop")]
    assert end.pending == {7: ("e", "c")}
    assert end.frame("e", "x", ack, b"", 1.0) == [Resolve(7, DELIVERED, 1.0)]
    assert end.frame("e", "x", ack, b"", 1.0) == [Reject("not pending")]  # replayed


def test_a_link_drop_is_told_to_the_sender_along_the_reverse_route():
    edge, end = router(("x",)), router(("e",))
    end.sent(7, "e", "c")
    header = replace(message_frames()[0][0], hop="e")
    (notice,) = edge.link_dropped("x", header, now=2.0)
    assert isinstance(notice, Pass) and (notice.at, notice.nxt) == ("x", "e")
    assert notice.header.type == "drop"
    assert end.frame("e", "x", notice.header, b"", 2.1) == [Resolve(7, DROPPED, 2.0)]
    # the sender's own first link dropping it resolves at once
    end.sent(9, "e", "c")
    own = end.link_dropped("e", replace(header, id=9), now=3.0)
    assert own == [Resolve(9, DROPPED, 3.0)]


def test_unshaped_messages_go_straight_and_acks_straight_back():
    cloud, end = router(("c",), unshaped=True), router(("e",), unshaped=True)
    end.sent(7, "e", "c")
    (frame,) = message_frames()
    deliver, ack = cloud.frame("c", "e", *frame, now=0.1)
    assert isinstance(deliver, Deliver) and (ack.at, ack.nxt) == ("c", "e")
    assert end.frame("e", "c", ack.header, b"", 0.2) == [Resolve(7, DELIVERED, 0.1)]
    relayed = replace(frame[0], hop="x")
    assert cloud.frame("c", "x", relayed, frame[1], 0.3) == [Reject("hop")]


def test_bad_bodies_envelopes_and_duplicates_are_rejected():
    cloud = router(("c",))
    junk = b"not a message at all"
    bad = Header("data", "e", "c", "model", 1, len(junk), 0, zlib.crc32(junk), 0.0, None, "x")
    assert cloud.frame("c", "x", bad, junk, 0.0) == [Reject("decode")]
    header, data = message_frames()[0]
    lying = replace(header, kind="features", hop="x")  # the envelope says "model"
    assert cloud.frame("c", "x", lying, data, 0.0) == [Reject("envelope")]
    honest = replace(header, hop="x")
    assert isinstance(cloud.frame("c", "x", honest, data, 0.0)[0], Deliver)
    assert cloud.frame("c", "x", honest, data, 0.0) == [Reject("duplicate")]


def test_reassembly_bounds_and_idle_eviction():
    r = Reassembly(max_message_bytes=100, per_source_bytes=150, total_bytes=250, idle_s=1.0)

    def first(src: str, id: int, size: int, now: float) -> bytes | None:
        head = Header("data", src, "c", "k", id, size, 0, 0, 0.0, None, src)
        return r.add(head, b"x", now)

    assert first("a", 1, 100, 0.0) is None
    for reason, args in (
        ("too large", ("a", 2, 101, 0.0)),
        ("source buffer full", ("a", 2, 60, 0.0)),
    ):
        try:
            first(*args)
        except BadFrame as exc:
            assert exc.reason == reason
        else:
            raise AssertionError(reason)
    assert first("b", 1, 100, 0.5) is None
    try:
        first("d", 1, 60, 0.5)
    except BadFrame as exc:
        assert exc.reason == "buffer full"
    assert (r.buffered, len(r)) == (200, 2)
    assert first("d", 1, 60, 1.2) is None  # a's message idle for 1.2 s > 1 s: evicted
    assert (r.buffered, r.evicted, dict(r.by_source)) == (160, 1, {"b": 100, "d": 60})


def test_log_lines_are_limited_to_one_per_second_per_reason():
    limiter = LogLimiter(1.0)
    allowed = [limiter.allows(reason, t / 10) for t in range(25) for reason in ("hop", "decode")]
    assert sum(allowed) == 6  # at 0, 1.0 and 2.0 s, for each reason


# ---------------------------------------------------------------------------- fuzzing
names = st.sampled_from([*NODES, "zz", ""])
headers = st.builds(
    Header,
    type=st.sampled_from(["data", "ack", "drop"]),
    src=names,
    dst=names,
    kind=st.sampled_from(["model", "features", "x"]),
    id=st.integers(0, 12),
    bytes=st.integers(0, 6000),
    offset=st.integers(0, 6000),
    checksum=st.just(0),
    t_send=st.floats(0, 10),
    reply_to=st.none() | st.integers(0, 5),
    hop=names,
)
bodies = st.binary(max_size=300)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(NODES), names, headers, bodies | st.just(b"")), max_size=40),
    st.booleans(),
)
def test_random_frames_never_raise_never_forge_and_stay_bounded(frames, unshaped):
    """Hostile frames mixed with one honest message: the router never raises, delivers
    nothing but the honest message (random bodies never decode to a valid envelope), and
    its buffers stay within the limits."""
    r = Router(NODES, NODES, path, unshaped, LIMITS, unpadded)
    honest = message_frames(id=3, chunk=40)
    sequence = [(at, peer, h, d) for at, peer, h, d in frames]
    hop = "e" if unshaped else "x"
    for k, (header, data) in enumerate(honest):
        sequence.insert(min(len(sequence), 2 * k), ("c", hop, replace(header, hop=hop), data))
    delivered = []
    for now, (at, peer, header, data) in enumerate(sequence):
        header = replace(header, checksum=zlib.crc32(data)) if header.type == "data" else header
        for action in r.frame(at, peer, header, data, now * 0.01):
            if isinstance(action, Deliver):
                delivered.append(action.message)
        assert r.reassembly.buffered <= LIMITS.total_bytes
        assert all(v <= LIMITS.per_source_bytes for v in r.reassembly.by_source.values())
    for message in delivered:  # only what its source really sent
        assert (message.src, message.dst, message.kind, message.id) == ("e", "c", "model", 3)
