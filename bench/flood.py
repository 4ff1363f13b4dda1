"""A hostile peer for live runs: floods mailboxes with bad frames for a while.

    python bench/flood.py SECONDS NODE=tcp://HOST:PORT ... [--as ID] [--partial SRC>DST]

Every round it sends each mailbox junk multiparts, headers that are not JSON, frames with
a wrong checksum, a forged ``hop``, an absurd declared size, an ack for nothing and a
frame over the live frame limit, all under the routing id ``--as`` (default
``mallory``). ``--partial SRC>DST`` adds first chunks of messages SRC → DST that never
finish, each declaring 1 MiB, under new ids (pass ``--as SRC`` so they pass the route
checks of an unshaped run: they then reach the destination's reassembly). Prints the
number of multiparts sent. Used by ``tests/test_live_hostile.py`` and
``bench/live_flood.py``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import socket
import time
import zlib

import zmq

PIECE = b"0123456789"


def free_ports(n: int) -> list[int]:
    """``n`` loopback TCP ports free right now."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def header(**fields: object) -> bytes:
    """A well-formed header frame with ``fields`` changed."""
    base = {"type": "data", "src": "a0", "dst": "b0", "kind": "x", "id": 5, "bytes": 10,
            "offset": 0, "checksum": zlib.crc32(PIECE), "t_send": 0.0, "reply_to": None,
            "hop": "mallory", "v": 1}  # fmt: skip
    base.update(fields)
    return json.dumps(base).encode()


def bad_frames(identity: str) -> list[list[bytes]]:
    return [
        [b"\xff" * 40],
        [b"{", b""],
        [header(hop=identity, checksum=1), PIECE],
        [header(hop="l"), PIECE],
        [header(hop=identity, src="nobody", bytes=10**9), PIECE],
        [header(hop=identity, type="ack", bytes=0, checksum=zlib.crc32(b"")), b""],
        [header(hop=identity, checksum=0), bytes(2 << 20)],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", type=float)
    parser.add_argument("mailboxes", nargs="+", metavar="NODE=ENDPOINT")
    parser.add_argument("--as", dest="identity", default="mallory")
    parser.add_argument("--partial", metavar="SRC>DST")
    args = parser.parse_args()
    targets = dict(m.split("=", 1) for m in args.mailboxes)
    ctx = zmq.Context()
    out = ctx.socket(zmq.ROUTER)
    out.setsockopt(zmq.ROUTING_ID, args.identity.encode())
    out.setsockopt(zmq.LINGER, 0)
    for endpoint in targets.values():
        out.connect(endpoint)
    time.sleep(0.3)
    frames = bad_frames(args.identity)
    ids = itertools.count(10**12)
    src, _, dst = (args.partial or "").partition(">")
    sent = 0
    until = time.monotonic() + args.seconds
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))  # ends early, still counts
    while time.monotonic() < until and not stop:
        batch = [(node, f) for node in targets for f in frames]
        if args.partial:
            piece = bytes(64 << 10)
            partial = header(src=src, dst=dst, hop=args.identity, id=next(ids), bytes=1 << 20,
                             checksum=zlib.crc32(piece))  # fmt: skip
            batch.append((dst, [partial, piece]))
        for node, parts in batch:
            try:
                out.send_multipart([node.encode(), *parts], zmq.NOBLOCK)
                sent += 1
            except zmq.ZMQError:
                pass
        time.sleep(0.002)
    print(sent)
    ctx.destroy(linger=0)


if __name__ == "__main__":
    main()
