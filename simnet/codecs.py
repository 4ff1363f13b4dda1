"""Optional lossy codecs for what-if studies of compression.

A codec turns a named set of tensors into another named set (what goes on the wire) plus a
small ``dict[str, str]`` of facts needed to undo it (original dtypes, shapes).
:func:`simnet.message.encode` stores that dict in the safetensors metadata, so the encoded
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
"""

from __future__ import annotations

import json
import math

import torch

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

    def decode(self, tensors: Tensors, meta: dict[str, str]) -> Tensors:
        """Tensors in their original names, dtypes and shapes (values may be lossy)."""
        return dict(tensors)

    def __repr__(self) -> str:
        return f"get_codec({self.name!r})"


def _check_names(tensors: Tensors) -> None:
    bad = [n for n in tensors if SEP in n]
    if bad:
        raise ValueError(f"tensor names must not contain {SEP!r} with a lossy codec: {bad}")


class Fp16Codec(Codec):
    """Cast floating tensors wider than 16 bits to float16."""

    name = "fp16"

    def encode(self, tensors: Tensors) -> tuple[Tensors, dict[str, str]]:
        out: Tensors = {}
        dtypes: dict[str, str] = {}
        for name, t in tensors.items():
            if t.is_floating_point() and t.element_size() > 2:
                dtypes[name] = dtype_name(t.dtype)
                t = t.to(torch.float16)
            out[name] = t
        return out, {"dtypes": json.dumps(dtypes, sort_keys=True)}

    def decode(self, tensors: Tensors, meta: dict[str, str]) -> Tensors:
        out = dict(tensors)
        for name, dt in json.loads(meta.get("dtypes", "{}")).items():
            out[name] = out[name].to(dtype_from_name(dt))
        return out


class Int8Codec(Codec):
    """Per-tensor symmetric int8 quantisation with a float32 scale."""

    name = "int8"

    def encode(self, tensors: Tensors) -> tuple[Tensors, dict[str, str]]:
        _check_names(tensors)
        out: Tensors = {}
        dtypes: dict[str, str] = {}
        for name, t in tensors.items():
            if not t.is_floating_point():
                out[name] = t
                continue
            x = t.detach().to(torch.float64)
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"int8 codec: tensor {name!r} has non-finite values")
            amax = float(x.abs().max()) if x.numel() else 0.0
            # Round the scale to float32 first so that encoder and decoder use the same one.
            scale = torch.tensor(amax / 127 if amax > 0 else 1.0, dtype=torch.float32)
            q = torch.round(x / scale.double()).clamp_(-127, 127).to(torch.int8)
            out[name] = q
            out[name + SEP + "scale"] = scale
            dtypes[name] = dtype_name(t.dtype)
        return out, {"dtypes": json.dumps(dtypes, sort_keys=True)}

    def decode(self, tensors: Tensors, meta: dict[str, str]) -> Tensors:
        out = dict(tensors)
        for name, dt in json.loads(meta.get("dtypes", "{}")).items():
            scale = out.pop(name + SEP + "scale").double()
            out[name] = (out[name].double() * scale).to(dtype_from_name(dt))
        return out


class TopKCodec(Codec):
    """Keep the largest-magnitude fraction of each floating tensor (sparse indices + values)."""

    def __init__(self, fraction: float) -> None:
        if not 0.0 < fraction <= 1.0:  # also rejects NaN
            raise ValueError(f"topk fraction must be in (0, 1], got {fraction}")
        self.fraction = fraction
        self.name = f"topk:{fraction!r}"

    def k(self, numel: int) -> int:
        """Entries kept out of ``numel``: ``max(1, ceil(fraction * numel))``, at most numel."""
        return min(numel, max(1, math.ceil(self.fraction * numel)))

    def encode(self, tensors: Tensors) -> tuple[Tensors, dict[str, str]]:
        _check_names(tensors)
        out: Tensors = {}
        shapes: dict[str, list[int]] = {}
        for name, t in tensors.items():
            if not t.is_floating_point():
                out[name] = t
                continue
            if t.numel() >= 2**31:
                raise ValueError(f"topk codec: tensor {name!r} too large for int32 indices")
            flat = t.detach().reshape(-1)
            order = torch.argsort(flat.abs(), descending=True, stable=True)
            idx = order[: self.k(flat.numel())].sort().values
            out[name + SEP + "idx"] = idx.to(torch.int32)
            out[name + SEP + "val"] = flat[idx]
            shapes[name] = list(t.shape)
        return out, {"shapes": json.dumps(shapes, sort_keys=True)}

    def decode(self, tensors: Tensors, meta: dict[str, str]) -> Tensors:
        out = dict(tensors)
        for name, shape in json.loads(meta.get("shapes", "{}")).items():
            idx = out.pop(name + SEP + "idx").long()
            val = out.pop(name + SEP + "val")
            dense = torch.zeros(math.prod(shape), dtype=val.dtype)
            dense[idx] = val
            out[name] = dense.reshape(shape)
        return out


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
