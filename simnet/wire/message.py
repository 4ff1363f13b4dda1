"""The message envelope and its wire format.

A message is encoded as one safetensors blob (never pickle): the tensors of the payload
(after the optional codec) are the safetensors tensors, and the envelope (``src``, ``dst``,
``kind``, ``id``, ``size_bytes``, ``meta``, the codec name and the codec's own facts) is one
JSON string stored under the key ``"simnet"`` of the safetensors ``__metadata__``.
The network charges ``wire_size(message)`` bytes for it. :func:`decode` takes bytes from
anywhere: whatever they are, it returns a message or raises :class:`DecodeError`.
"""

from __future__ import annotations

import json
import math
import reprlib
from dataclasses import dataclass, field
from typing import Any

import torch

from simnet.wire.codecs import Codec, get_codec
from simnet.wire.safetensors_bytes import load as _st_load
from simnet.wire.safetensors_bytes import read_header
from simnet.wire.safetensors_bytes import save as _st_save

ENVELOPE_KEY = "simnet"
MAX_DECODED_BYTES = 4 << 30
"""Default bound of :func:`decode` on the bytes of a payload's decoded tensors (4 GiB)."""
_FIELDS = {"src": str, "dst": str, "kind": str, "id": int, "size_bytes": (int, type(None)),
           "meta": dict, "codec": str, "codec_meta": dict}  # fmt: skip
"""The envelope's keys and the JSON types of their values."""


class DecodeError(ValueError):
    """Bytes that are not an encoded message (or whose payload is over the bound)."""


@dataclass
class Message:
    """One message between two nodes.

    ``payload``: named tensors (real data). ``meta``: a small JSON-serialisable dict (it
    round-trips through JSON, so tuples come back as lists and keys as strings).
    ``size_bytes``: a declared size in bytes, only for payload-less, network-only messages
    (traffic studies). ``id``: assigned by the network (-1 until then).
    Transport facts, not part of the encoding: ``reply_to`` (the id of the message this one
    answers) and ``t_send`` (seconds; set on delivery).
    """

    src: str
    dst: str
    kind: str
    payload: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    size_bytes: int | None = None
    id: int = -1
    reply_to: int | None = None
    t_send: float | None = None

    def __post_init__(self) -> None:
        _check_size(self)


def _check_size(message: Message) -> None:
    size = message.size_bytes
    if size is None:
        return
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"size_bytes must be a non-negative int, got {size!r}")
    if message.payload:
        raise ValueError("size_bytes may only be declared for a message without payload")


def encode(message: Message, codec: Codec | None = None) -> bytes:
    """Encode ``message`` as safetensors bytes, applying ``codec`` to the payload."""
    _check_size(message)
    for name, t in message.payload.items():
        if not isinstance(name, str) or not isinstance(t, torch.Tensor):
            raise TypeError(f"payload must map str to torch.Tensor, got {name!r}: {type(t)}")
    codec = codec or Codec()
    tensors, codec_meta = codec.encode(message.payload)
    envelope = {
        "src": message.src,
        "dst": message.dst,
        "kind": message.kind,
        "id": message.id,
        "size_bytes": message.size_bytes,
        "meta": message.meta,
        "codec": codec.name,
        "codec_meta": codec_meta,
    }
    try:
        text = json.dumps(envelope, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"message meta is not JSON-serialisable: {exc}") from exc
    return _st_save(tensors, metadata={ENVELOPE_KEY: text})


def decode(data: bytes, max_bytes: int | None = MAX_DECODED_BYTES) -> Message:
    """Inverse of :func:`encode`: tensors come back in their original names, dtypes, shapes.

    :class:`DecodeError` (and no other exception) if ``data`` is not an encoded message or
    its payload would decode to more than ``max_bytes`` bytes (``None``: no bound). Nothing
    beyond one copy of the data section is allocated before the whole is checked."""
    try:
        header = read_header(data)
        envelope = _envelope(header)
        codec = get_codec(envelope["codec"])
        payload = codec.decode(_st_load(data, header), envelope["codec_meta"], max_bytes)
        return Message(
            src=envelope["src"],
            dst=envelope["dst"],
            kind=envelope["kind"],
            payload=payload,
            meta=envelope["meta"],
            size_bytes=envelope["size_bytes"],
            id=envelope["id"],
        )
    except DecodeError:
        raise
    except ValueError as exc:
        raise DecodeError(f"not a message: {exc}") from exc


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise DecodeError(f"envelope: non-finite number {reprlib.repr(text)}")
    return value


def _envelope(header: dict[str, Any]) -> dict[str, Any]:
    """The checked envelope of a message's (checked) safetensors ``header``."""
    text = header.get("__metadata__", {}).get(ENVELOPE_KEY)
    if text is None:
        raise DecodeError(f"not a message: no {ENVELOPE_KEY!r} metadata")
    try:
        envelope = json.loads(text, parse_float=_finite, parse_constant=_finite)
    except RecursionError as exc:
        raise DecodeError("envelope: nested too deeply") from exc
    if not isinstance(envelope, dict) or envelope.keys() != _FIELDS.keys():
        raise DecodeError(f"envelope: not a JSON object with keys {sorted(_FIELDS)}")
    for key, types in _FIELDS.items():
        value = envelope[key]
        if not isinstance(value, types) or isinstance(value, bool):
            raise DecodeError(f"envelope: {key} is {type(value).__name__}")
    if not all(isinstance(v, str) for v in envelope["codec_meta"].values()):
        raise DecodeError("envelope: codec_meta must map strings to strings")
    return envelope


def wire_size(message: Message, codec: Codec | None = None) -> int:
    """Bytes the network must carry for ``message``.

    Rule: if ``size_bytes`` is declared (allowed only when the payload is empty) it is the
    size, whatever the meta. Otherwise the size is ``len(encode(message, codec))``, the real
    encoded length, envelope included (so even an empty message costs a few hundred bytes).
    ``ValueError`` if ``size_bytes`` is declared together with a payload or is not a
    non-negative int.
    """
    _check_size(message)
    if message.size_bytes is not None:
        return message.size_bytes
    return len(encode(message, codec))
