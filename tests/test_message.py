"""Message envelope, safetensors wire format and codecs."""

from __future__ import annotations

import json
import math
import struct

import pytest
import torch

from simnet.wire.codecs import get_codec
from simnet.wire.message import Message, decode, encode, wire_size


def _payload() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "w": torch.randn(3, 4, generator=g),
        "b": torch.randn((), generator=g, dtype=torch.float64),
        "h": torch.randn(5, generator=g).to(torch.float16),
        "bf": torch.randn(2, 3, generator=g).to(torch.bfloat16),
        "idx": torch.arange(7, dtype=torch.int64),
        "i32": torch.arange(24, dtype=torch.int32).reshape(2, 3, 4),
        "mask": torch.tensor([True, False, True]),
        "u8": torch.tensor([0, 255, 7], dtype=torch.uint8),
        "empty": torch.zeros(0, 3),
    }


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].shape == b[name].shape, name
        assert torch.equal(a[name], b[name]), name


def _header(data: bytes) -> tuple[int, dict]:
    (n,) = struct.unpack("<Q", data[:8])
    return n, json.loads(data[8 : 8 + n].decode("utf-8"))


# safetensors' dtype codes and element sizes (from its format specification).
ST_DTYPES = {
    torch.float64: ("F64", 8),
    torch.int64: ("I64", 8),
    torch.float32: ("F32", 4),
    torch.int32: ("I32", 4),
    torch.float16: ("F16", 2),
    torch.uint8: ("U8", 1),
}


def _hand_header(msg: Message, wire: dict[str, torch.Tensor], codec: str = "none",
                 codec_meta: dict | None = None) -> tuple[dict, int]:  # fmt: skip
    """The safetensors header a message should have, built from the documented envelope
    and the wire tensors' dtypes and shapes: data laid out by decreasing element size,
    then name (safetensors' order, unambiguous for the dtypes used here). Returns the
    header and the number of data bytes."""
    envelope = {
        "src": msg.src, "dst": msg.dst, "kind": msg.kind, "id": msg.id,
        "size_bytes": msg.size_bytes, "meta": msg.meta, "codec": codec,
        "codec_meta": codec_meta or {},
    }  # fmt: skip
    header: dict = {
        "__metadata__": {"simnet": json.dumps(envelope, sort_keys=True, separators=(",", ":"))}
    }
    offset = 0
    for name in sorted(wire, key=lambda n: (-ST_DTYPES[wire[n].dtype][1], n)):
        code, size = ST_DTYPES[wire[name].dtype]
        nbytes = math.prod(wire[name].shape) * size
        header[name] = {"dtype": code, "shape": list(wire[name].shape),
                        "data_offsets": [offset, offset + nbytes]}  # fmt: skip
        offset += nbytes
    return header, offset


def _hand_size(header: dict, data_bytes: int) -> int:
    """8-byte length + the compact JSON header padded with spaces to 8 bytes + the data."""
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return 8 + -(-len(text) // 8) * 8 + data_bytes


def test_round_trip_exact_without_codec() -> None:
    payload = _payload()
    got = decode(encode(Message("end0", "edge0", "update", payload)))
    _assert_same(payload, got.payload)


def test_envelope_and_meta_survive() -> None:
    meta = {"round": 3, "loss": 0.25, "mods": ["a", "t"], "nested": {"x": None, "ok": True}}
    msg = Message("edge1", "cloud", "model", {"x": torch.ones(2)}, meta=meta, id=42)
    got = decode(encode(msg))
    assert (got.src, got.dst, got.kind, got.id, got.meta) == ("edge1", "cloud", "model", 42, meta)
    assert got.size_bytes is None


def test_non_contiguous_shared_and_grad_tensors_encode() -> None:
    base = torch.arange(12.0).reshape(3, 4)
    p = torch.nn.Parameter(torch.ones(2, 2))
    payload = {"t": base.t(), "row": base[1], "base": base, "p": p}
    got = decode(encode(Message("a", "b", "k", payload))).payload
    assert torch.equal(got["t"], base.t()) and got["t"].is_contiguous()
    assert torch.equal(got["row"], base[1]) and torch.equal(got["base"], base)
    assert torch.equal(got["p"], p.detach()) and not got["p"].requires_grad


def test_wire_size_is_the_hand_computed_safetensors_length() -> None:
    g = torch.Generator().manual_seed(5)
    payload = {
        "w": torch.randn(3, 4, generator=g),
        "h": torch.randn(5, generator=g).to(torch.float16),
        "idx": torch.arange(7),
        "m": torch.tensor([1, 2, 3], dtype=torch.uint8),
    }
    msg = Message("end0", "edge0", "update", payload, meta={"round": 2, "s": 'a "q"'}, id=9)
    header, data = _hand_header(msg, payload)
    assert data == 3 * 4 * 4 + 5 * 2 + 7 * 8 + 3 * 1
    assert wire_size(msg) == _hand_size(header, data)
    n, parsed = _header(encode(msg))
    assert parsed == header and n % 8 == 0
    # fp16 sends w as float16 and records its original dtype in the codec facts.
    wire = {**payload, "w": payload["w"].half()}
    facts = {"tensors": json.dumps({"w": "float32"})}
    header16, data16 = _hand_header(msg, wire, "fp16", facts)
    assert data16 == data - 3 * 4 * 2
    assert wire_size(msg, get_codec("fp16")) == _hand_size(header16, data16)
    assert _header(encode(msg, get_codec("fp16")))[1] == header16


def test_wire_size_grows_with_the_payload() -> None:
    small = Message("a", "b", "k", {"x": torch.zeros(100)})
    large = Message("a", "b", "k", {"x": torch.zeros(1000)})
    growth = wire_size(large) - wire_size(small)
    # 900 more float32 values; the header only changes by a few digits (+ 8-byte padding).
    assert 900 * 4 <= growth <= 900 * 4 + 16


@pytest.mark.parametrize("codec", ["none", "int8", "topk:0.5"])
def test_encoding_ignores_key_order_and_layout_but_not_values(codec: str) -> None:
    payload = _payload()
    # The same tensors inserted in the opposite order, as fresh copies, one non-contiguous.
    reordered = {name: payload[name].clone() for name in reversed(list(payload))}
    reordered["w"] = payload["w"].t().contiguous().t()
    assert not reordered["w"].is_contiguous() and list(reordered) != list(payload)
    meta_a = {"z": 1, "a": {"y": 2, "b": [1, 2]}}
    meta_b = {"a": {"b": [1, 2], "y": 2}, "z": 1}
    a = encode(Message("a", "b", "k", payload, meta=meta_a), get_codec(codec))
    b = encode(Message("a", "b", "k", reordered, meta=meta_b), get_codec(codec))
    assert a == b
    # One changed value changes the bytes but not the length.
    changed = {**payload, "w": payload["w"].clone()}
    changed["w"][0, 0] += 1.0
    c = encode(Message("a", "b", "k", changed, meta=meta_a), get_codec(codec))
    assert c != a and len(c) == len(a)


def test_declared_size_for_payload_less_messages() -> None:
    assert wire_size(Message("a", "b", "data", size_bytes=1_000_000)) == 1_000_000
    assert wire_size(Message("a", "b", "data", meta={"flow": 1}, size_bytes=5)) == 5
    got = decode(encode(Message("a", "b", "data", size_bytes=7)))
    assert got.size_bytes == 7 and got.payload == {}
    # An envelope-only message still has a real encoded size: length + header, no data.
    bare = Message("a", "b", "ack")
    assert wire_size(bare) == _hand_size(_hand_header(bare, {})[0], 0) > 8
    with pytest.raises(ValueError):
        Message("a", "b", "k", {"x": torch.ones(1)}, size_bytes=10)
    with pytest.raises(ValueError):
        Message("a", "b", "k", size_bytes=-1)
    msg = Message("a", "b", "k", size_bytes=10)
    msg.payload = {"x": torch.ones(1)}
    with pytest.raises(ValueError):
        wire_size(msg)


def test_meta_must_be_json() -> None:
    with pytest.raises(ValueError):
        encode(Message("a", "b", "k", meta={"t": torch.ones(1)}))


def test_blob_is_plain_safetensors() -> None:
    data = encode(Message("a", "b", "k", _payload(), meta={"r": 1}), get_codec("int8"))
    n, header = _header(data)
    assert data[8:9] == b"{"  # JSON, not a pickle opcode stream
    meta = json.loads(header.pop("__metadata__")["simnet"])
    assert meta["codec"] == "int8" and meta["meta"] == {"r": 1}
    # The header's data offsets account for every remaining byte: nothing else is in there.
    end = max(info["data_offsets"][1] for info in header.values())
    assert 8 + n + end == len(data)


def test_fp16_round_trip_and_size() -> None:
    n = 256 * 1024
    x = torch.randn(n, generator=torch.Generator().manual_seed(1))
    payload = {"x": x, "i": torch.arange(4)}
    msg = Message("a", "b", "k", payload)
    got = decode(encode(msg, get_codec("fp16"))).payload
    assert got["x"].dtype == torch.float32 and got["x"].shape == x.shape
    assert torch.equal(got["i"], payload["i"])
    # Round to nearest with an 11-bit significand: relative error <= 2^-11 (+ subnormal slack).
    assert bool(((got["x"] - x).abs() <= x.abs() * 2.0**-11 + 2.0**-25).all())
    raw, half = wire_size(msg), wire_size(msg, get_codec("fp16"))
    assert abs(raw - (4 * n + 4 * 8)) < 1024
    assert abs(half - (2 * n + 4 * 8)) < 1024
    assert 0.49 < half / raw < 0.51


def test_int8_error_and_size() -> None:
    n = 256 * 1024
    x = torch.randn(n, generator=torch.Generator().manual_seed(2)) * 3
    msg = Message("a", "b", "k", {"x": x, "i": torch.arange(4, dtype=torch.int16)})
    got = decode(encode(msg, get_codec("int8"))).payload
    assert got["x"].dtype == torch.float32 and got["x"].shape == x.shape
    assert got["i"].dtype == torch.int16 and torch.equal(got["i"], torch.arange(4))
    scale = max(abs(v) for v in x.tolist()) / 127
    err = (got["x"].double() - x.double()).abs().max().item()
    assert err <= scale / 2 * (1 + 1e-5)
    q = wire_size(msg, get_codec("int8"))
    assert abs(q - n) < 1024
    assert 0.24 < q / wire_size(msg) < 0.26


def test_int8_all_zero_and_float64() -> None:
    codec = get_codec("int8")
    wire, _ = codec.encode({"z": torch.zeros(3, 2)})
    assert wire["z"].dtype == torch.int8 and wire["z::scale"].item() == 1.0
    assert wire["z::scale"].dtype == torch.float32 and wire["z::scale"].dim() == 0
    x = torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64)
    got = decode(encode(Message("a", "b", "k", {"z": torch.zeros(3, 2), "x": x}), codec))
    assert torch.equal(got.payload["z"], torch.zeros(3, 2))
    assert got.payload["x"].dtype == torch.float64
    assert (got.payload["x"] - x).abs().max().item() <= 1 / 127 / 2 + 1e-9


def test_topk_keeps_expected_entries() -> None:
    x = torch.tensor([[0.1, -5.0, 3.0], [0.2, 4.0, -0.3]])
    codec = get_codec("topk:0.34")  # ceil(0.34 * 6) = 3 entries
    wire, _ = codec.encode({"x": x})
    assert wire["x::idx"].dtype == torch.int32 and wire["x::idx"].tolist() == [1, 2, 4]
    assert wire["x::val"].dtype == torch.float32
    got = decode(encode(Message("a", "b", "k", {"x": x, "n": torch.arange(3)}), codec)).payload
    expected = torch.tensor([[0.0, -5.0, 3.0], [0.0, 4.0, 0.0]])
    assert got["x"].shape == (2, 3) and torch.equal(got["x"], expected)
    assert torch.equal(got["n"], torch.arange(3))


def test_topk_random_matches_independent_selection() -> None:
    x = torch.randn(10, 20, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    fraction = 0.1
    k = math.ceil(fraction * x.numel())
    flat = x.flatten().tolist()
    keep = set(sorted(range(len(flat)), key=lambda i: -abs(flat[i]))[:k])
    got = decode(encode(Message("a", "b", "k", {"x": x}), get_codec(f"topk:{fraction}")))
    y = got.payload["x"]
    assert y.dtype == torch.float64 and y.shape == x.shape
    nonzero = set(torch.nonzero(y.flatten()).flatten().tolist())
    assert nonzero == keep
    assert all(y.flatten()[i].item() == flat[i] for i in keep)


def test_topk_at_least_one_and_ties() -> None:
    wire, _ = get_codec("topk:0.001").encode({"x": torch.tensor([1.0, -3.0, 2.0])})
    assert wire["x::idx"].tolist() == [1]
    wire, _ = get_codec("topk:0.5").encode({"x": torch.tensor([1.0, -1.0, 1.0, 0.5])})
    assert wire["x::idx"].tolist() == [0, 1]  # ties: lower flat index first
    got = decode(encode(Message("a", "b", "k", {"s": torch.tensor(2.5)}), get_codec("topk:1")))
    assert got.payload["s"].shape == () and got.payload["s"].item() == 2.5


def test_codec_names_round_trip() -> None:
    for spec in ["none", "fp16", "int8", "topk:0.25", "topk:1"]:
        codec = get_codec(spec)
        assert get_codec(codec.name).name == codec.name
    assert get_codec(" FP16 ").name == "fp16"


@pytest.mark.parametrize(
    "spec", ["", "fp32", "topk", "topk:", "topk:0", "topk:1.5", "topk:-0.1", "topk:abc", "topk:nan"]
)
def test_bad_codec_specs(spec: str) -> None:
    with pytest.raises(ValueError, match="topk:<fraction>"):
        get_codec(spec)


def test_lossy_codecs_reject_separator_in_names() -> None:
    for spec in ["int8", "topk:0.5"]:
        with pytest.raises(ValueError):
            encode(Message("a", "b", "k", {"x::scale": torch.ones(2)}), get_codec(spec))
