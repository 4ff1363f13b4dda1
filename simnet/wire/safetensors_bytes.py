"""Named tensors as safetensors bytes and back: byte for byte what ``safetensors.torch.save``
writes, and the tensors ``safetensors.torch.load`` reads (``tests/test_safetensors_bytes.py``
compares them), with less per-tensor Python work (encoding a model state took ~4 ms).

The format: an 8-byte little-endian header length ``N``; ``N`` bytes of compact JSON —
``__metadata__`` first, then each tensor's ``dtype``, ``shape`` and ``data_offsets``
(begin, end in the data section) — padded with spaces to a multiple of 8; then the raw
little-endian data of every tensor, in the header's order: by dtype (safetensors' order,
:data:`DTYPES`), then by name. Several metadata keys are written sorted (safetensors
writes them in its hash map's order, which varies; messages carry one).
"""

from __future__ import annotations

import json
import math
import reprlib
import struct
import sys
from typing import Any

import torch

DTYPES: dict[torch.dtype, str] = {
    torch.uint64: "U64",
    torch.int64: "I64",
    torch.float64: "F64",
    torch.float32: "F32",
    torch.uint32: "U32",
    torch.int32: "I32",
    torch.bfloat16: "BF16",
    torch.float16: "F16",
    torch.uint16: "U16",
    torch.int16: "I16",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
"""Safetensors' name of each dtype, in the order its data is laid out."""
_RANK = {dtype: rank for rank, dtype in enumerate(DTYPES)}
_NAMED = {name: dtype for dtype, name in DTYPES.items()}
_SIZES = {dtype: torch.empty(0, dtype=dtype).element_size() for dtype in DTYPES}
MAX_HEADER_BYTES = 100_000_000
"""Longest header read, bytes (safetensors' own limit)."""
MAX_RANK = 64
"""Most dimensions of a tensor read."""


def save(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """``tensors`` (any device, layout or storage sharing) and ``metadata`` as safetensors
    bytes. ``ValueError`` for a dtype safetensors cannot hold. The tensors of one dtype are
    flattened into one buffer with a single ``torch.cat``."""
    if sys.byteorder != "little":  # pragma: no cover (no such machine here)
        raise ValueError("safetensors data is little-endian; this machine is not")
    for name, t in tensors.items():
        if t.dtype not in DTYPES:
            raise ValueError(f"tensor {name!r}: dtype {t.dtype} has no safetensors name")
    entries: dict[str, object] = (
        {} if metadata is None else {"__metadata__": dict(sorted(metadata.items()))}
    )
    groups: dict[torch.dtype, list[torch.Tensor]] = {}
    offset = 0
    for name, t in sorted(tensors.items(), key=lambda item: (_RANK[item[1].dtype], item[0])):
        end = offset + t.numel() * t.element_size()
        entries[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                         "data_offsets": [offset, end]}  # fmt: skip
        groups.setdefault(t.dtype, []).append(t.detach().reshape(-1).to("cpu"))
        offset = end
    header = json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode()
    header += b" " * (-len(header) % 8)
    chunks = [torch.cat(flat).view(torch.uint8).numpy() for flat in groups.values()]
    return b"".join([struct.pack("<Q", len(header)), header, *chunks])


def read_header(data: bytes | bytearray) -> dict[str, Any]:
    """The JSON header of safetensors ``data``, checked against the data before anything is
    allocated: ``ValueError`` naming the first problem unless the header length is at most
    :data:`MAX_HEADER_BYTES` and within ``data``, the header is a JSON object whose
    ``__metadata__`` (if any) maps strings to strings and whose every other entry has a
    known ``dtype``, a ``shape`` of non-negative ints and ``data_offsets`` ``[begin, end]``
    spanning exactly ``prod(shape)`` elements, the entries tiling the data section from its
    first byte to its last without gap or overlap (as safetensors requires)."""
    if len(data) < 8:
        raise ValueError("not a safetensors blob: shorter than 8 bytes")
    (n,) = struct.unpack_from("<Q", data)
    if n > MAX_HEADER_BYTES:
        raise ValueError(f"not a safetensors blob: header of {n} bytes exceeds {MAX_HEADER_BYTES}")
    if 8 + n > len(data):
        raise ValueError("not a safetensors blob: header length exceeds data")
    try:
        header = json.loads(bytes(memoryview(data)[8 : 8 + n]).decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValueError("not a safetensors blob: header is not UTF-8 JSON") from exc
    _check_header(header, len(data) - 8 - n)
    return header


def _check_header(header: Any, data_bytes: int) -> None:
    """``ValueError`` unless ``header`` describes a data section of ``data_bytes`` bytes."""
    if not isinstance(header, dict):
        raise ValueError("safetensors header: not a JSON object")
    spans = []
    for key, entry in header.items():
        name = reprlib.repr(key)
        if key == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise ValueError("safetensors header: __metadata__ must map strings to strings")
            continue
        if not isinstance(entry, dict) or entry.keys() != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"safetensors tensor {name}: needs dtype, shape, data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _NAMED:
            raise ValueError(f"safetensors tensor {name}: unknown dtype {reprlib.repr(dtype)}")
        if (
            not isinstance(shape, list)
            or len(shape) > MAX_RANK
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise ValueError(
                f"safetensors tensor {name}: shape must be at most {MAX_RANK} non-negative ints"
            )
        if math.prod(max(d, 1) for d in shape) >= 1 << 63:  # its strides overflow int64
            raise ValueError(f"safetensors tensor {name}: shape is too large")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise ValueError(f"safetensors tensor {name}: data_offsets must be [begin, end]")
        if offsets[1] - offsets[0] != math.prod(shape) * _SIZES[_NAMED[dtype]]:
            raise ValueError(f"safetensors tensor {name}: data_offsets disagree with its shape")
        spans.append((offsets[0], offsets[1], name))
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            raise ValueError(f"safetensors tensor {name}: data_offsets leave a gap or overlap")
        end = stop
    if end != data_bytes:
        raise ValueError(f"safetensors header: tensors cover {end} of {data_bytes} data bytes")


def load(data: bytes | bytearray, header: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """The tensors of safetensors ``data`` (what ``safetensors.torch.load`` gives), on the
    CPU, as views of one copy of the data section (header order); ``header``: its
    :func:`read_header` (so checked against ``data``), if already read. ``ValueError`` if
    ``data`` is not safetensors; nothing is allocated before the header is checked."""
    header = read_header(data) if header is None else header
    (n,) = struct.unpack_from("<Q", data)
    body = bytearray(memoryview(data)[8 + n :])
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        dtype = _NAMED[entry["dtype"]]
        if begin == end:
            out[name] = torch.empty(entry["shape"], dtype=dtype)  # checked: no elements
            continue
        flat = torch.frombuffer(body, dtype=dtype, count=(end - begin) // _SIZES[dtype],
                                offset=begin)  # fmt: skip
        out[name] = flat.view(entry["shape"])
    return out
