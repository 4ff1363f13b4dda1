"""The live-mode frame format: a JSON header frame and a data frame, never pickle.

A message (or one chunk of it) travels as the multipart ``[header, data]``. ``header`` is a
UTF-8 JSON object (see :class:`Header`); ``data`` is the slice of the message's safetensors
bytes that starts at ``offset`` (the whole message when not chunked; empty for an ack).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

VERSION = 1
TYPES = ("data", "ack", "drop")
"""Frame types: a message's data, its acknowledgement, a notice that a link dropped it."""


class BadFrame(Exception):
    """A received multipart that is not a valid frame pair; the argument is a short reason."""

    @property
    def reason(self) -> str:
        """The short reason, e.g. ``"checksum"``."""
        return str(self.args[0])


@dataclass(frozen=True)
class Header:
    """One frame's header. ``bytes``: length of the whole message's data; ``offset``: where
    this frame's data starts in it; ``checksum``: ``zlib.crc32`` of this frame's data;
    ``t_send``: seconds; ``hop``: the node that sent this frame on its last hop."""

    type: str
    src: str
    dst: str
    kind: str
    id: int
    bytes: int
    offset: int
    checksum: int
    t_send: float
    reply_to: int | None
    hop: str
    v: int = VERSION

    def to_bytes(self) -> bytes:
        """The header frame: compact UTF-8 JSON."""
        return json.dumps(asdict(self), separators=(",", ":"), allow_nan=False).encode()


FIELDS = frozenset(Header.__dataclass_fields__)


def encode_frames(header: Header, data: bytes) -> list[bytes]:
    """The multipart ``[header, data]`` for one frame pair."""
    return [header.to_bytes(), data]


def chunks(header: Header, data: bytes, chunk_bytes: int) -> Iterator[tuple[Header, bytes]]:
    """Split one message into frame pairs of at most ``chunk_bytes`` data bytes each, with
    ``bytes``, ``offset`` and ``checksum`` filled in (one empty pair for empty data)."""
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
    view = memoryview(data)
    for offset in range(0, max(len(data), 1), chunk_bytes):
        piece = bytes(view[offset : offset + chunk_bytes])
        yield (
            replace(header, bytes=len(data), offset=offset, checksum=zlib.crc32(piece)),
            piece,
        )


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise BadFrame("duplicate key")
    return obj


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj[key]
    if type(value) is not int:
        raise BadFrame(f"{key}: not an int")
    if value < 0:
        raise BadFrame(f"{key}: negative")
    return value


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise BadFrame(f"{key}: not a string")
    try:
        value.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate from a JSON escape
        raise BadFrame(f"{key}: not Unicode") from exc
    return value


def _header(raw: bytes | memoryview) -> Header:
    try:
        obj = json.loads(bytes(raw).decode("utf-8"), object_pairs_hook=_object)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadFrame("header: not UTF-8 JSON") from exc
    if not isinstance(obj, dict):
        raise BadFrame("header: not an object")
    if obj.keys() != FIELDS:
        raise BadFrame("header: wrong keys")
    if _int(obj, "v") != VERSION:
        raise BadFrame("version")
    if _str(obj, "type") not in TYPES:
        raise BadFrame("type")
    t_send = obj["t_send"]
    if type(t_send) not in (int, float) or not math.isfinite(t_send):
        raise BadFrame("t_send: not a finite number")
    reply_to = obj["reply_to"]
    if reply_to is not None:
        reply_to = _int(obj, "reply_to")
    checksum = _int(obj, "checksum")
    if checksum > 0xFFFFFFFF:
        raise BadFrame("checksum: out of range")
    return Header(
        type=obj["type"],
        src=_str(obj, "src"),
        dst=_str(obj, "dst"),
        kind=_str(obj, "kind"),
        id=_int(obj, "id"),
        bytes=_int(obj, "bytes"),
        offset=_int(obj, "offset"),
        checksum=checksum,
        t_send=float(t_send),
        reply_to=reply_to,
        hop=_str(obj, "hop"),
    )


def parse_frames(
    frames: Sequence[bytes | memoryview], max_frame_bytes: int
) -> tuple[Header, bytes]:
    """Validate a received ``[header, data]`` multipart; raise :class:`BadFrame` (and
    nothing else) if it is not a valid frame pair. ``max_frame_bytes``: per frame."""
    if len(frames) != 2:
        raise BadFrame("frame count")
    if any(len(frame) > max_frame_bytes for frame in frames):
        raise BadFrame("size")
    header = _header(frames[0])
    data = frames[1]
    if header.offset + len(data) > header.bytes:
        raise BadFrame("offset")
    if header.type != "data" and len(data):
        raise BadFrame(f"{header.type} with data")
    if zlib.crc32(data) != header.checksum:
        raise BadFrame("checksum")
    return header, bytes(data)
