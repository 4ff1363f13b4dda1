"""Live-mode transport: the frame format, reassembly, mailboxes over loopback, CURVE."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import shutil
import socket
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
import zmq.asyncio
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from simnet.live.keys import load_public, load_secret, public_keys, write_keys
from simnet.live.mailbox import FRAME_SLACK_BYTES, Mailbox, Unreachable, start_authenticator
from simnet.live.reassembly import Reassembly
from simnet.live.wire import (
    BadFrame,
    Header,
    chunks,
    encode_frames,
    parse_frames,
)

LOOPBACK = "tcp://127.0.0.1:*"


def header(data: bytes = b"", **fields: Any) -> Header:
    """A valid data header for ``data`` sent whole from b to a; ``fields`` override."""
    base = Header(
        type="data",
        src="b",
        dst="a",
        kind="model",
        id=7,
        bytes=len(data),
        offset=0,
        checksum=zlib.crc32(data),
        t_send=1.5,
        reply_to=None,
        hop="b",
    )
    return replace(base, **fields)


def raw(data: bytes = b"abc", **fields: Any) -> list[bytes]:
    """Frames whose header JSON has ``fields`` set (``None`` deletes a key)."""
    obj = json.loads(header(data).to_bytes())
    for key, value in fields.items():
        if value is None:
            del obj[key]
        else:
            obj[key] = value
    return [json.dumps(obj).encode(), data]


async def until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait (polling every 10 ms) until ``predicate()`` holds; fail after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_header_round_trip() -> None:
    data = b"\x00\x01payload"
    for h in (header(data), header(data, reply_to=3, t_send=0, kind="ack-ish", hop="e1")):
        frames = encode_frames(h, data)
        assert len(frames) == 2 and frames[1] == data
        parsed, body = parse_frames(frames, 1024)
        assert parsed == h and body == data
        assert isinstance(parsed.t_send, float)
    ack = header(type="ack", bytes=10, reply_to=7)
    assert parse_frames(encode_frames(ack, b""), 1024) == (ack, b"")
    assert set(json.loads(ack.to_bytes())) == {
        "v", "type", "src", "dst", "kind", "id", "bytes", "offset", "checksum", "t_send",
        "reply_to", "hop",
    }  # fmt: skip


def test_chunks_cover_the_message() -> None:
    data = bytes(range(256)) * 10
    pairs = list(chunks(header(), data, 1000))
    assert [h.offset for h, _ in pairs] == [0, 1000, 2000]
    assert b"".join(piece for _, piece in pairs) == data
    for h, piece in pairs:
        assert parse_frames(encode_frames(h, piece), 1000) == (h, piece)
    assert list(chunks(header(), b"", 10)) == [(header(b""), b"")]


BAD: list[tuple[str, list[bytes]]] = [
    ("no frames", []),
    ("one frame", raw()[:1]),
    ("three frames", [*raw(), b""]),
    ("oversize data", raw(b"x" * 101)),
    ("oversize header", [b" " * 101, b""]),
    ("not UTF-8", [b"\xff\xfe{}", b""]),
    ("not JSON", [b"{", b""]),
    ("UTF-16 JSON", ['{"v": 1}'.encode("utf-16"), b""]),
    ("deep JSON", [b"[" * 100_000, b""]),
    ("not an object", [b"[1, 2]", b""]),
    ("missing key", raw(hop=None)),
    ("extra key", raw(extra=1)),
    ("duplicate key", [raw()[0][:-1] + b', "v": 1}', b"abc"]),
    ("bool id", raw(id=True)),
    ("str id", raw(id="7")),
    ("float id", raw(id=7.0)),
    ("int src", raw(src=1)),
    ("null hop", [raw()[0].replace(b'"hop": "b"', b'"hop": null'), b"abc"]),
    ("lone surrogate", [raw()[0].replace(b'"src": "b"', b'"src": "\\ud800"'), b"abc"]),
    ("str t_send", raw(t_send="1")),
    ("bool t_send", raw(t_send=False)),
    ("NaN t_send", raw(t_send=float("nan"))),
    ("inf t_send", raw(t_send=float("inf"))),
    ("huge t_send", [raw()[0].replace(b'"t_send": 1.5', b'"t_send": 1e400'), b"abc"]),
    ("bool reply_to", raw(reply_to=True)),
    ("negative reply_to", raw(reply_to=-1)),
    ("negative id", raw(id=-1)),
    ("negative bytes", raw(bytes=-1)),
    ("negative offset", raw(offset=-1)),
    ("checksum too big", raw(checksum=2**32)),
    ("past the end", raw(offset=1)),
    ("short total", raw(bytes=2)),
    ("checksum mismatch", raw(checksum=zlib.crc32(b"abd"))),
    ("unknown type", raw(type="nack")),
    ("unknown version", raw(v=2)),
    ("bool version", raw(v=True)),
    ("ack with data", raw(type="ack")),
]


@pytest.mark.parametrize("frames", [f for _, f in BAD], ids=[name for name, _ in BAD])
def test_parse_frames_rejects(frames: list[bytes]) -> None:
    with pytest.raises(BadFrame):
        parse_frames(frames, 100)


def test_parse_frames_only_raises_badframe_on_random_bytes() -> None:
    rng = random.Random(1)
    good = encode_frames(header(b"abc"), b"abc")
    for _ in range(3000):
        frames = [rng.randbytes(rng.randrange(40)) for _ in range(rng.choice((1, 2, 2, 3)))]
        if rng.random() < 0.5:
            cut = rng.randrange(len(good[0]))
            frames = [good[0][:cut] + rng.randbytes(rng.randrange(4)), good[1]]
        with pytest.raises(BadFrame):
            parse_frames(frames, 100)


def test_reassembly() -> None:
    data = bytes(range(200)) * 5
    pairs = list(chunks(header(), data, 300))
    box = Reassembly(max_message_bytes=2000, per_source_bytes=2000, total_bytes=2000, idle_s=9)

    def add(h: Header, d: bytes) -> bytes | None:
        return box.add(h, d, 0.0)

    assert add(*pairs[0]) is None and box.buffered == 1000
    with pytest.raises(BadFrame):
        add(*pairs[0])  # duplicate
    with pytest.raises(BadFrame):
        add(*pairs[2])  # out of order
    with pytest.raises(BadFrame):
        add(replace(pairs[1][0], kind="other"), pairs[1][1])  # disagrees with its first
    with pytest.raises(BadFrame):
        add(replace(pairs[1][0], id=99), pairs[1][1])  # no first frame
    other = list(chunks(header(id=8), data * 2, 300))
    with pytest.raises(BadFrame, match="buffer full"):
        add(*other[0])
    assert add(*pairs[1]) is None
    assert add(*pairs[2]) is None
    assert add(*pairs[3]) == data and box.buffered == 0
    assert add(header(b"xy", id=9), b"xy") == b"xy"  # whole messages are not buffered
    with pytest.raises(BadFrame):
        add(header(type="ack"), b"")


def test_keys(tmp_path: Path) -> None:
    write_keys(tmp_path / "k", ["a", "b"])
    pub_a = load_public(tmp_path / "k", "a")
    assert load_secret(tmp_path / "k", "a")[0] == pub_a and len(pub_a) == 40
    assert public_keys(tmp_path / "k") == {pub_a: "a", load_public(tmp_path / "k", "b"): "b"}
    with pytest.raises(ValueError, match="'c'"):
        load_public(tmp_path / "k", "c")
    (tmp_path / "k" / "b.key_secret").unlink()
    with pytest.raises(ValueError, match="b.key_secret is missing"):
        load_secret(tmp_path / "k", "b")
    with pytest.raises(ValueError):
        public_keys(tmp_path / "nowhere")
    with pytest.raises(ValueError):
        write_keys(tmp_path / "k", ["../x"])

    async def main() -> None:
        ctx = zmq.asyncio.Context()
        try:
            with pytest.raises(RuntimeError, match="start_authenticator"):
                Mailbox(ctx, "a", LOOPBACK, {}, keys=tmp_path / "k")
        finally:
            ctx.destroy(linger=0)

    asyncio.run(main())


def test_unreachable_peer_times_out() -> None:
    async def main() -> None:
        ctx = zmq.asyncio.Context()
        with socket.create_server(("127.0.0.1", 0)) as mute:  # accepts TCP, never speaks ZMTP
            port = mute.getsockname()[1]
            b = Mailbox(ctx, "b", LOOPBACK, {"c": f"tcp://127.0.0.1:{port}"}, connect_timeout_s=0.2)
            try:
                with pytest.raises(Unreachable, match="'c'"):
                    await b.send("c", header(b"x"), b"x")
                with pytest.raises(ValueError, match="unknown peer"):
                    await b.send("zz", header(b"x"), b"x")
            finally:
                await b.close()
                ctx.destroy(linger=0)

    asyncio.run(main())


def _fuzz_frames(rng: random.Random, n: int, max_frame_bytes: int) -> list[list[bytes]]:
    """``n`` multiparts that a node must reject, from a sender with routing id ``fuzz``."""

    def valid(size: int) -> list[bytes]:
        data = rng.randbytes(size)
        return encode_frames(header(data, hop="fuzz", id=rng.randrange(100)), data)

    out: list[list[bytes]] = []
    for i in range(n):
        case = i % 7
        if case == 0:  # random bytes
            out.append([rng.randbytes(rng.randrange(300)) for _ in range(rng.randrange(1, 5))])
        elif case == 1:  # truncated header
            h, d = valid(50)
            out.append([h[: rng.randrange(len(h))], d])
        elif case == 2:  # truncated data
            h, d = valid(rng.randrange(1, 200))
            out.append([h, d[: rng.randrange(len(d))]])
        elif case == 3:  # a flipped checksum bit
            data = rng.randbytes(rng.randrange(1, 200))
            bad = header(data, hop="fuzz", checksum=zlib.crc32(data) ^ (1 << rng.randrange(32)))
            out.append(encode_frames(bad, data))
        elif case == 4:  # wrong frame count
            h, d = valid(20)
            out.append(rng.choice(([h], [h, d, d], [h, d, b"", b""], [d])))
        elif case == 5:  # oversize frame
            out.append(valid(max_frame_bytes + 1 + rng.randrange(1000)))
        else:  # a valid pair whose hop is not its sender
            data = rng.randbytes(10)
            out.append(encode_frames(header(data, hop="b"), data))
    return out


def test_fuzzed_frames_do_not_hurt_the_node() -> None:
    max_frame = 4096

    async def main() -> None:
        ctx = zmq.asyncio.Context()
        a = Mailbox(ctx, "a", LOOPBACK, {}, max_frame_bytes=max_frame)
        b = Mailbox(ctx, "b", LOOPBACK, {"a": a.endpoint})
        fuzz = ctx.socket(zmq.DEALER)
        fuzz.setsockopt(zmq.LINGER, 0)
        fuzz.setsockopt(zmq.ROUTING_ID, b"fuzz")
        fuzz.connect(a.endpoint)
        try:
            for frames in _fuzz_frames(random.Random(0), 1000, max_frame):
                await fuzz.send_multipart(frames)
            await until(lambda: a.rejected.total() >= 1000)
            assert a.rejected.total() == 1000 and a.alive
            assert {"frame count", "size", "checksum", "hop"} <= set(a.rejected)
            assert a._queue.empty()

            await b.send("a", header(b"hello"), b"hello")
            got = await asyncio.wait_for(a.recv(), 5)
            assert got == (header(b"hello"), b"hello")

            tensors = {"w": np.arange(2500, dtype=np.float32).reshape(50, 50)}
            blob = st_save(tensors)
            pairs = list(chunks(header(id=8, kind="model"), blob, max_frame))
            assert len(pairs) == 3
            for h, piece in pairs:
                await b.send("a", h, piece)
            box = Reassembly(1 << 20, 1 << 20, 1 << 20, idle_s=9)
            done = [box.add(*await asyncio.wait_for(a.recv(), 5), 0.0) for _ in pairs]
            assert done[:2] == [None, None] and done[2] == blob
            np.testing.assert_array_equal(st_load(done[2])["w"], tensors["w"])
            assert a.rejected.total() == 1000 and a.alive
        finally:
            fuzz.close(linger=0)
            await b.close()
            await a.close()
            ctx.destroy(linger=0)

    asyncio.run(main())


def test_an_oversize_frame_is_never_received_and_its_sender_recovers() -> None:
    max_frame = 4096

    async def main() -> None:
        ctx = zmq.asyncio.Context()
        a = Mailbox(ctx, "a", LOOPBACK, {}, max_frame_bytes=max_frame)
        b = Mailbox(ctx, "b", LOOPBACK, {"a": a.endpoint})
        fuzz = ctx.socket(zmq.DEALER)
        fuzz.setsockopt(zmq.LINGER, 0)
        fuzz.setsockopt(zmq.ROUTING_ID, b"fuzz")
        fuzz.connect(a.endpoint)
        try:
            huge = bytes(max_frame + FRAME_SLACK_BYTES + 1)
            await fuzz.send_multipart(encode_frames(header(huge, hop="fuzz"), huge))
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(a.recv(), 0.3)
            await b.send("a", header(b"hello"), b"hello")
            assert await asyncio.wait_for(a.recv(), 5) == (header(b"hello"), b"hello")
            await fuzz.send_multipart(encode_frames(header(b"back", hop="fuzz"), b"back"))
            assert await asyncio.wait_for(a.recv(), 5) == (header(b"back", hop="fuzz"), b"back")
            assert not a.rejected and a.alive
        finally:
            fuzz.close(linger=0)
            await b.close()
            await a.close()
            ctx.destroy(linger=0)

    asyncio.run(main())


def test_a_slow_consumer_holds_its_sender_back() -> None:
    """The queue stays at its bound, the sender blocks at its high-water mark, nothing is
    lost or reordered once the consumer catches up."""
    n, size = 600, 64 << 10

    async def main() -> None:
        ctx = zmq.asyncio.Context()
        a = Mailbox(ctx, "a", LOOPBACK, {}, max_frame_bytes=size, hwm=2, max_queued=4)
        b = Mailbox(ctx, "b", LOOPBACK, {"a": a.endpoint}, hwm=2)
        data = bytes(size)

        async def send_all() -> None:
            for i in range(n):
                await b.send("a", header(data, id=i), data)

        sender = asyncio.get_running_loop().create_task(send_all())
        try:
            await until(lambda: a._queue.full())
            await asyncio.sleep(0.3)
            assert a._queue.qsize() == 4 and not sender.done()  # n × 64 KiB exceed the buffers
            got = [(await asyncio.wait_for(a.recv(), 5))[0].id for _ in range(n)]
            assert got == list(range(n))
            await asyncio.wait_for(sender, 5)
            assert not a.rejected
        finally:
            sender.cancel()
            await b.close()
            await a.close()
            ctx.destroy(linger=0)

    asyncio.run(main())


def test_rejections_are_logged_once_a_second_per_reason(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        ctx = zmq.asyncio.Context()
        a = Mailbox(ctx, "a", LOOPBACK, {})
        fuzz = ctx.socket(zmq.DEALER)
        fuzz.setsockopt(zmq.LINGER, 0)
        fuzz.setsockopt(zmq.ROUTING_ID, b"fuzz")
        fuzz.connect(a.endpoint)
        try:
            for _ in range(50):
                await fuzz.send_multipart([b"x"])
                await fuzz.send_multipart(encode_frames(header(b"x", hop="b"), b"x"))
            await until(lambda: a.rejected.total() == 100)
            assert a.rejected == {"frame count": 50, "hop": 50}
        finally:
            fuzz.close(linger=0)
            await a.close()
            ctx.destroy(linger=0)

    with caplog.at_level(logging.WARNING, logger="simnet.live"):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if "dropped a frame" in r.getMessage()]
    assert sorted(lines) == [
        "a: dropped a frame from b'fuzz': frame count (1 so far)",
        "a: dropped a frame from b'fuzz': hop (1 so far)",
    ]


def test_curve_refuses_strangers_and_forged_hops(tmp_path: Path) -> None:
    keys, other = tmp_path / "keys", tmp_path / "other"
    write_keys(keys, ["a", "b", "c"])
    write_keys(other, ["b"])  # a stranger claiming to be b with a key a does not know
    shutil.copy(keys / "a.key", other / "a.key")

    async def main() -> None:
        ctx_a, ctx_b, ctx_s = (zmq.asyncio.Context() for _ in range(3))
        auths = [start_authenticator(ctx_a, keys), start_authenticator(ctx_b, keys)]
        auths.append(start_authenticator(ctx_s, other))
        with pytest.raises(RuntimeError, match="already"):
            start_authenticator(ctx_a, keys)
        a = Mailbox(ctx_a, "a", LOOPBACK, {}, keys=keys)
        boxes = [a]
        forger = ctx_b.socket(zmq.DEALER)
        try:
            stranger = Mailbox(
                ctx_s, "b", LOOPBACK, {"a": a.endpoint}, keys=other, connect_timeout_s=1.0
            )
            boxes.append(stranger)
            with pytest.raises(Unreachable):
                await stranger.send("a", header(b"evil"), b"evil")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(a.recv(), 1.0)
            assert not a.rejected
            await stranger.close()
            boxes.remove(stranger)

            b = Mailbox(ctx_b, "b", LOOPBACK, {"a": a.endpoint}, keys=keys)
            boxes.append(b)
            await b.send("a", header(b"forged", hop="c"), b"forged")
            await b.send("a", header(b"honest"), b"honest")
            assert await asyncio.wait_for(a.recv(), 5) == (header(b"honest"), b"honest")
            assert a.rejected == {"forged": 1}

            # b's key with c's routing id and hop: the routing id matches, the key does not
            public, secret = load_secret(keys, "b")
            forger.setsockopt(zmq.LINGER, 0)
            forger.setsockopt(zmq.ROUTING_ID, b"c")
            forger.setsockopt(zmq.CURVE_PUBLICKEY, public)
            forger.setsockopt(zmq.CURVE_SECRETKEY, secret)
            forger.setsockopt(zmq.CURVE_SERVERKEY, load_public(keys, "a"))
            forger.connect(a.endpoint)
            await forger.send_multipart(encode_frames(header(b"x", hop="c"), b"x"))
            await until(lambda: a.rejected["forged"] == 2)
            assert a._queue.empty() and a.alive
        finally:
            forger.close(linger=0)
            for box in boxes:
                await box.close()
            for auth in auths:
                auth.stop()
            for ctx in (ctx_a, ctx_b, ctx_s):
                ctx.destroy(linger=0)

    asyncio.run(main())
