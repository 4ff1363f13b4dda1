"""Optional lossy codecs for what-if studies of compression.

A codec turns a named set of tensors into another named set (what goes on the wire) plus a
small ``dict[str, str]`` of facts needed to undo it (original dtypes, shapes).
:func:`simnet.wire.message.encode` stores that dict in the safetensors metadata, so the encoded
bytes, and hence the simulated transfer time, include the codec's real overhead.

Specs understood by :func:`get_codec`:

``none``
    identity.
``fp16``
    floating tensors wider than 16 bits are cast to ``float16``; decode restores the dtype.
``int8``
    per-tensor symmetric quantisation: ``scale = max|x| / 127`` (1 if ``x`` is all zero),
    ``q = clamp(round(x / scale), -127, 127)`` as ``int8`` under the tensor's own name,
    ``scale`` as a float32 scalar under ``<name>::scale``; decode is ``q * scale``.
``topk:<fraction>``
    per tensor, the ``k = max(1, ceil(fraction * numel))`` entries of largest magnitude
    (ties: lower flat index first) are sent as int32 flat indices ``<name>::idx`` (ascending)
    and values ``<name>::val``; decode scatters them into zeros. ``fraction`` in (0, 1].

Non-floating tensors always pass through unchanged. Derived names use the ``::``
separator, so lossy codecs refuse input names that contain it.

Decoding trusts nothing it is given: wire tensors and facts that an encoder could not have
produced raise ``ValueError`` before any tensor is made, and ``max_bytes`` bounds the
bytes of the decoded tensors (a few bytes of topk facts can declare a huge shape).
"""

from __future__ import annotations

import json
import math
import reprlib
from typing import Any

import torch

from simnet.wire.safetensors_bytes import DTYPES, MAX_RANK

Tensors = dict[str, torch.Tensor]

SEP = "::"
VALID_SPECS = "'none', 'fp16', 'int8' or 'topk:<fraction>' with fraction in (0, 1]"


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``."""
    return str(dtype).removeprefix("torch.")


def dtype_from_name(name: str) -> torch.dtype:
    """Inverse of :func:`dtype_name`."""
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return dtype


class Codec:
    """Identity codec and base class. Subclasses override :meth:`encode` and :meth:`decode`.

    ``name`` is the canonical spec: ``get_codec(codec.name)`` rebuilds an equivalent codec.
    """

    name = "none"

    def encode(self, tensors: Tensors) -> tuple[Tensors, dict[str, str]]:
        """Wire tensors and the string facts :meth:`decode` needs."""
        return dict(tensors), {}

    def decode(
        self, tensors: Tensors, meta: dict[str, str], max_bytes: int | None = None
    ) -> Tensors:
        """Tensors in their original names, dtypes and shapes (values may be lossy);
        ``ValueError`` if ``tensors`` and ``meta`` cannot be this codec's output or would
        decode to more than ``max_bytes`` bytes (``None``: no bound)."""
        _check_total(sum(_nbytes(t) for t in tensors.values()), max_bytes)
        return dict(tensors)

    def __repr__(self) -> str:
        return f"get_codec({self.name!r})"


class PerTensorCodec(Codec):
    """A codec that rewrites each tensor it :meth:`applies` to on its own.

    Subclasses turn one tensor into wire tensors named ``<name>`` and/or
    ``<name>::<part>`` (for each of ``parts``) plus a JSON-able ``info``, and back.
    Tensors it does not apply to pass through unchanged.
    """

    parts: tuple[str, ...] = ()

    def applies(self, t: torch.Tensor) -> bool:
        return t.is_floating_point()

    def encode_tensor(self, name: str, t: torch.Tensor) -> tuple[Tensors, Any]:
        raise NotImplementedError

    def check_tensor(self, name: str, wire: Tensors, info: Any) -> int:
        """``ValueError`` unless ``wire`` and ``info`` can be what :meth:`encode_tensor`
        made; the bytes of the tensor :meth:`decode_tensor` will make of them."""
        raise NotImplementedError

    def decode_tensor(self, name: str, wire: Tensors, info: Any) -> torch.Tensor:
        """The tensor of ``wire`` and ``info``, once :meth:`check_tensor` accepted them."""
        raise NotImplementedError

    def encode(self, tensors: Tensors) -> tuple[Tensors, dict[str, str]]:
        bad = [n for n in tensors if SEP in n] if self.parts else []
        if bad:
            raise ValueError(f"tensor names must not contain {SEP!r} with codec {self.name}: {bad}")
        out: Tensors = {}
        infos: dict[str, Any] = {}
        for name, t in tensors.items():
            if self.applies(t):
                wire, infos[name] = self.encode_tensor(name, t)
                out.update(wire)
            else:
                out[name] = t
        return out, {"tensors": json.dumps(infos, sort_keys=True)}

    def decode(
        self, tensors: Tensors, meta: dict[str, str], max_bytes: int | None = None
    ) -> Tensors:
        try:
            infos = json.loads(meta.get("tensors", "{}"))
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"codec {self.name}: its facts are not JSON") from exc
        if not isinstance(infos, dict):
            raise ValueError(f"codec {self.name}: its facts are not a JSON object")
        out = dict(tensors)
        wires = {}
        for name in infos:
            keys = [name, *(name + SEP + part for part in self.parts)]
            wires[name] = {k: out.pop(k) for k in keys if k in out}
        total = sum(_nbytes(t) for t in out.values())
        for name, info in infos.items():
            try:
                total += self.check_tensor(name, wires[name], info)
            except KeyError as exc:
                raise ValueError(
                    f"codec {self.name}: no wire tensor {reprlib.repr(exc.args[0])}"
                ) from None
        _check_total(total, max_bytes)
        for name, info in infos.items():
            out[name] = self.decode_tensor(name, wires[name], info)
        return out


class Fp16Codec(PerTensorCodec):
    """Cast floating tensors wider than 16 bits to float16."""

    name = "fp16"

    def applies(self, t: torch.Tensor) -> bool:
        return t.is_floating_point() and t.element_size() > 2

    def encode_tensor(self, name: str, t: torch.Tensor) -> tuple[Tensors, Any]:
        return {name: t.to(torch.float16)}, dtype_name(t.dtype)

    def check_tensor(self, name: str, wire: Tensors, info: Any) -> int:
        x = _wire(wire, name, torch.float16)
        return x.numel() * _float_dtype(name, info).itemsize

    def decode_tensor(self, name: str, wire: Tensors, info: Any) -> torch.Tensor:
        return wire[name].to(dtype_from_name(info))


class Int8Codec(PerTensorCodec):
    """Per-tensor symmetric int8 quantisation with a float32 scale."""

    name = "int8"
    parts = ("scale",)

    def encode_tensor(self, name: str, t: torch.Tensor) -> tuple[Tensors, Any]:
        x = t.detach().to(torch.float64)
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"int8 codec: tensor {name!r} has non-finite values")
        amax = float(x.abs().max()) if x.numel() else 0.0
        # Round the scale to float32 first so that encoder and decoder use the same one.
        scale = torch.tensor(amax / 127 if amax > 0 else 1.0, dtype=torch.float32)
        q = torch.round(x / scale.double()).clamp_(-127, 127).to(torch.int8)
        return {name: q, name + SEP + "scale": scale}, dtype_name(t.dtype)

    def check_tensor(self, name: str, wire: Tensors, info: Any) -> int:
        q = _wire(wire, name, torch.int8)
        if _wire(wire, name + SEP + "scale", torch.float32).shape != ():
            raise ValueError(f"int8 codec: tensor {reprlib.repr(name)}: scale is not a scalar")
        return q.numel() * _float_dtype(name, info).itemsize

    def decode_tensor(self, name: str, wire: Tensors, info: Any) -> torch.Tensor:
        scale = wire[name + SEP + "scale"].double()
        return (wire[name].double() * scale).to(dtype_from_name(info))


class TopKCodec(PerTensorCodec):
    """Keep the largest-magnitude fraction of each floating tensor (sparse indices + values)."""

    parts = ("idx", "val")

    def __init__(self, fraction: float) -> None:
        if not 0.0 < fraction <= 1.0:  # also rejects NaN
            raise ValueError(f"topk fraction must be in (0, 1], got {fraction}")
        self.fraction = fraction
        self.name = f"topk:{fraction!r}"

    def k(self, numel: int) -> int:
        """Entries kept out of ``numel``: ``max(1, ceil(fraction * numel))``, at most numel."""
        return min(numel, max(1, math.ceil(self.fraction * numel)))

    def encode_tensor(self, name: str, t: torch.Tensor) -> tuple[Tensors, Any]:
        if t.numel() >= 2**31:
            raise ValueError(f"topk codec: tensor {name!r} too large for int32 indices")
        flat = t.detach().reshape(-1)
        order = torch.argsort(flat.abs(), descending=True, stable=True)
        idx = order[: self.k(flat.numel())].sort().values
        wire = {name + SEP + "idx": idx.to(torch.int32), name + SEP + "val": flat[idx]}
        return wire, list(t.shape)

    def check_tensor(self, name: str, wire: Tensors, info: Any) -> int:
        label = f"topk codec: tensor {reprlib.repr(name)}"
        if (
            not isinstance(info, list)
            or len(info) > MAX_RANK
            or not all(type(d) is int and d >= 0 for d in info)
        ):
            raise ValueError(f"{label}: shape must be at most {MAX_RANK} non-negative ints")
        numel = math.prod(info)
        idx = _wire(wire, name + SEP + "idx", torch.int32)
        val = wire[name + SEP + "val"]
        if not val.is_floating_point() or idx.dim() != 1 or val.shape != idx.shape:
            raise ValueError(f"{label}: indices and values must be 1-D, of equal length")
        if len(idx) > numel or (len(idx) and not 0 <= int(idx.min()) <= int(idx.max()) < numel):
            raise ValueError(f"{label}: indices out of range for shape {info}")
        return numel * val.element_size()

    def decode_tensor(self, name: str, wire: Tensors, info: Any) -> torch.Tensor:
        val = wire[name + SEP + "val"]
        dense = torch.zeros(math.prod(info), dtype=val.dtype)
        dense[wire[name + SEP + "idx"].long()] = val
        return dense.reshape(info)


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _check_total(total: int, max_bytes: int | None) -> None:
    if max_bytes is not None and total > max_bytes:
        raise ValueError(f"decoded tensors would hold {total} bytes, more than {max_bytes}")


def _wire(wire: Tensors, name: str, dtype: torch.dtype) -> torch.Tensor:
    """``wire[name]`` if it has ``dtype``; ``KeyError`` if it is missing."""
    t = wire[name]
    if t.dtype != dtype:
        raise ValueError(f"codec: wire tensor {reprlib.repr(name)} is {t.dtype}, not {dtype}")
    return t


_FLOATS = {dtype_name(d): d for d in DTYPES if d.is_floating_point}


def _float_dtype(name: str, info: Any) -> torch.dtype:
    """The floating dtype named by a tensor's codec ``info``."""
    if not isinstance(info, str) or info not in _FLOATS:
        raise ValueError(
            f"codec: tensor {reprlib.repr(name)}: {reprlib.repr(info)} is no floating dtype"
        )
    return _FLOATS[info]


def get_codec(spec: str) -> Codec:
    """Parse a codec spec (see the module docstring); a bad spec raises ``ValueError``."""
    s = spec.strip().lower() if isinstance(spec, str) else ""
    if s == "none":
        return Codec()
    if s == "fp16":
        return Fp16Codec()
    if s == "int8":
        return Int8Codec()
    if s.startswith("topk:"):
        try:
            fraction = float(s.removeprefix("topk:"))
        except ValueError:
            fraction = math.nan
        if 0.0 < fraction <= 1.0:
            return TopKCodec(fraction)
    raise ValueError(f"bad codec {spec!r}: expected {VALID_SPECS}")
