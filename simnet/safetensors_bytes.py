"""Named tensors as safetensors bytes: byte for byte what ``safetensors.torch.save``
writes (``tests/test_safetensors_bytes.py`` compares them), without its per-tensor Python
work, which made encoding a model state cost milliseconds per message.

The format: an 8-byte little-endian header length ``N``; ``N`` bytes of compact JSON —
``__metadata__`` first, then each tensor's ``dtype``, ``shape`` and ``data_offsets``
(begin, end in the data section) — padded with spaces to a multiple of 8; then the raw
little-endian data of every tensor, in the header's order: by dtype (safetensors' order,
:data:`DTYPES`), then by name. Several metadata keys are written sorted (safetensors
writes them in its hash map's order, which varies; messages carry one).
"""

from __future__ import annotations

import json
import struct
import sys

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


def save(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """``tensors`` (any device, layout or storage sharing) and ``metadata`` as safetensors
    bytes. ``ValueError`` for a dtype safetensors cannot hold."""
    if sys.byteorder != "little":  # pragma: no cover (no such machine here)
        raise ValueError("safetensors data is little-endian; this machine is not")
    for name, t in tensors.items():
        if t.dtype not in DTYPES:
            raise ValueError(f"tensor {name!r}: dtype {t.dtype} has no safetensors name")
    entries: dict[str, object] = (
        {} if metadata is None else {"__metadata__": dict(sorted(metadata.items()))}
    )
    chunks = []
    offset = 0
    for name, t in sorted(tensors.items(), key=lambda item: (_RANK[item[1].dtype], item[0])):
        data = t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy()
        end = offset + data.nbytes
        entries[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                         "data_offsets": [offset, end]}  # fmt: skip
        chunks.append(data)
        offset = end
    header = json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode()
    header += b" " * (-len(header) % 8)
    return b"".join([struct.pack("<Q", len(header)), header, *chunks])
