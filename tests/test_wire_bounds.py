"""Decoding bytes from anywhere: :func:`simnet.wire.message.decode` raises only
``DecodeError`` (a ``ValueError``), checks declared sizes before allocating, and bounds the
bytes a codec may expand a payload to."""

from __future__ import annotations

import json
import struct
import time
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simnet.wire.codecs import get_codec
from simnet.wire.message import DecodeError, Message, decode, encode
from simnet.wire.safetensors_bytes import load, read_header, save


def blob(header: Any, data: bytes = b"") -> bytes:
    """Safetensors bytes with a hand-made ``header`` (any JSON) and data section."""
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def envelope(**fields: Any) -> dict[str, str]:
    """The ``__metadata__`` of a valid empty message, ``fields`` replaced in its envelope."""
    env = {"src": "a", "dst": "b", "kind": "k", "id": 1, "size_bytes": None, "meta": {},
           "codec": "none", "codec_meta": {}}  # fmt: skip
    env.update(fields)
    return {"simnet": json.dumps(env)}


def valid_messages() -> list[bytes]:
    g = torch.Generator().manual_seed(0)
    payload = {
        "w": torch.randn(4, 5, generator=g),
        "h": torch.randn(3, generator=g).to(torch.float16),
        "i": torch.arange(6, dtype=torch.int32).reshape(2, 3),
        "e": torch.zeros(0, 2),
    }
    msg = Message("a", "b", "model", payload, meta={"round": 3, "names": ["x"]}, id=5)
    return [
        *(encode(msg, get_codec(spec)) for spec in ("none", "fp16", "int8", "topk:0.3")),
        encode(Message("a", "b", "traffic", size_bytes=1000)),
    ]


VALID = valid_messages()
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=8,
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decodes_or_refuses(data: bytes) -> None:
    try:
        message = decode(data)
    except DecodeError:
        return
    assert isinstance(message, Message)


def test_valid_messages_decode() -> None:
    shapes = {"w": (4, 5), "h": (3,), "i": (2, 3), "e": (0, 2)}
    for data in VALID[:4]:
        got = decode(data)
        assert {k: tuple(v.shape) for k, v in got.payload.items()} == shapes
        assert (got.kind, got.id, got.meta) == ("model", 5, {"round": 3, "names": ["x"]})
    assert decode(VALID[4]).size_bytes == 1000


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data)


@FUZZ
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, 10**6) | st.none(),
)
def test_mutated_bytes_decode_or_are_refused(base: bytes, edits: list, cut: int | None) -> None:
    data = bytearray(base)
    for at, value in edits:
        data[at % len(data)] = value
    decodes_or_refuses(bytes(data[:cut]))


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a JSON ``obj``."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _replace(obj: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    obj = obj.copy()
    obj[path[0]] = _replace(obj[path[0]], path[1:], value)
    return obj


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_mutated_headers_and_envelopes_decode_or_are_refused(
    base: bytes, data: st.DataObject
) -> None:
    """One value anywhere in the safetensors header, or in the envelope JSON inside it,
    becomes arbitrary JSON; the data section stays."""
    (n,) = struct.unpack("<Q", base[:8])
    header = json.loads(base[8 : 8 + n])
    env = json.loads(header["__metadata__"]["simnet"])
    if data.draw(st.booleans()):
        path = data.draw(st.sampled_from(_paths(env)))
        env = _replace(env, path, data.draw(JSON))
        header["__metadata__"]["simnet"] = json.dumps(env)
    else:
        header = _replace(header, data.draw(st.sampled_from(_paths(header))), data.draw(JSON))
    decodes_or_refuses(blob(header, base[8 + n :]))


def test_a_huge_declared_tensor_without_data_is_refused_before_allocating() -> None:
    huge = {"t": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 0]}}
    start = time.perf_counter()
    with pytest.raises(DecodeError, match="'t': data_offsets disagree with its shape"):
        decode(blob({"__metadata__": envelope(), **huge}))
    with pytest.raises(ValueError, match="cover 4000000000000 of 0 data bytes"):
        read_header(blob({"t": {**huge["t"], "data_offsets": [0, 4 * 10**12]}}))
    assert time.perf_counter() - start < 0.5
    empty = load(blob({"t": {"dtype": "F32", "shape": [0, 10**12], "data_offsets": [0, 0]}}))
    assert empty["t"].shape == (0, 10**12)


def entry(dtype: str = "F32", shape: Any = (2,), offsets: Any = (0, 8)) -> dict[str, Any]:
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


BAD_HEADERS: list[tuple[str, bytes, str]] = [
    ("short", b"\x01\x00", "shorter than 8 bytes"),
    ("header past the end", struct.pack("<Q", 50) + b"{}", "header length exceeds data"),
    ("header too long", struct.pack("<Q", 10**9) + b"{}", "exceeds 100000000"),
    ("not UTF-8", struct.pack("<Q", 2) + b"\xff{", "not UTF-8 JSON"),
    ("deep", struct.pack("<Q", 10**5) + b"[" * 10**5, "not UTF-8 JSON"),
    ("a list", blob([1]), "not a JSON object"),
    ("metadata not strings", blob({"__metadata__": {"a": 1}}), "map strings to strings"),
    ("unknown dtype", blob({"t": entry("C64")}, bytes(8)), "unknown dtype 'C64'"),
    ("list dtype", blob({"t": entry(["F32"])}, bytes(8)), "unknown dtype"),
    ("missing shape", blob({"t": {"dtype": "F32", "data_offsets": [0, 8]}}, bytes(8)), "needs"),
    ("negative dim", blob({"t": entry(shape=(-2,))}, bytes(8)), "non-negative ints"),
    ("bool dim", blob({"t": entry(shape=(True, 2))}, bytes(8)), "non-negative ints"),
    ("float dim", blob({"t": entry(shape=(2.0,))}, bytes(8)), "non-negative ints"),
    ("rank 65", blob({"t": entry(shape=(1,) * 65, offsets=(0, 4))}, bytes(4)), "at most 64"),
    ("strides overflow", blob({"t": entry(shape=(0, 2**62, 4), offsets=(0, 0))}), "too large"),
    ("reversed offsets", blob({"t": entry(offsets=(8, 0))}, bytes(8)), r"\[begin, end\]"),
    ("three offsets", blob({"t": entry(offsets=(0, 4, 8))}, bytes(8)), r"\[begin, end\]"),
    ("size mismatch", blob({"t": entry(offsets=(0, 4))}, bytes(4)), "disagree with its shape"),
    ("overlap", blob({"a": entry(), "b": entry(offsets=(4, 12))}, bytes(12)), "gap or overlap"),
    ("gap", blob({"t": entry(offsets=(4, 12))}, bytes(12)), "gap or overlap"),
    ("data left over", blob({"t": entry()}, bytes(9)), "cover 8 of 9 data bytes"),
    ("past the data", blob({"t": entry()}, bytes(7)), "cover 8 of 7 data bytes"),
]


@pytest.mark.parametrize(
    ("data", "match"), [c[1:] for c in BAD_HEADERS], ids=[c[0] for c in BAD_HEADERS]
)
def test_bad_safetensors_headers_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load(data)
    with pytest.raises(DecodeError, match=match):
        decode(data)


def topk_message(shape: Any = (4, 5), **wire: torch.Tensor) -> bytes:
    """A topk message of one tensor ``x`` of ``shape``: 3 kept entries unless ``wire``
    replaces its tensors."""
    tensors = {"x::idx": torch.tensor([0, 7, 19], dtype=torch.int32),
               "x::val": torch.tensor([1.0, -2.0, 3.0]), **wire}  # fmt: skip
    meta = {"tensors": json.dumps({"x": list(shape) if isinstance(shape, tuple) else shape})}
    return save(tensors, envelope(codec="topk:0.15", codec_meta=meta))


def int8_message(scale: torch.Tensor, info: Any = "float32") -> bytes:
    tensors = {"x": torch.tensor([1, -2, 3], dtype=torch.int8), "x::scale": scale}
    meta = {"tensors": json.dumps({"x": info})}
    return save(tensors, envelope(codec="int8", codec_meta=meta))


def test_topk_decodes_into_its_declared_shape() -> None:
    x = decode(topk_message()).payload["x"]
    assert x.shape == (4, 5) and x.dtype == torch.float32
    assert x.reshape(-1)[[0, 7, 19]].tolist() == [1.0, -2.0, 3.0] and x.count_nonzero() == 3


def test_topk_with_a_huge_declared_shape_is_refused() -> None:
    start = time.perf_counter()
    with pytest.raises(DecodeError, match="4000000000000 bytes, more than"):
        decode(topk_message((10**6, 10**6)))
    assert time.perf_counter() - start < 0.5
    assert decode(topk_message(), max_bytes=80).payload["x"].shape == (4, 5)  # 20 floats
    with pytest.raises(DecodeError, match="80 bytes, more than 79"):
        decode(topk_message(), max_bytes=79)


def test_the_bound_counts_every_decoded_tensor() -> None:
    msg = Message("a", "b", "k", {"w": torch.zeros(10), "i": torch.zeros(5, dtype=torch.int64)})
    for spec, size in (("none", 80), ("fp16", 80), ("int8", 80), ("topk:0.5", 80)):
        data = encode(msg, get_codec(spec))
        assert decode(data, max_bytes=size).payload.keys() == {"w", "i"}
        with pytest.raises(DecodeError, match=f"{size} bytes, more than {size - 1}"):
            decode(data, max_bytes=size - 1)


BAD_CODEC_DATA: list[tuple[str, bytes, str]] = [
    (
        "index out of range",
        topk_message(**{"x::idx": torch.tensor([0, 7, 20], dtype=torch.int32)}),
        "out of range",
    ),
    (
        "negative index",
        topk_message(**{"x::idx": torch.tensor([-1, 7, 9], dtype=torch.int32)}),
        "out of range",
    ),
    ("more entries than the shape", topk_message((2,)), "out of range"),
    ("int64 indices", topk_message(**{"x::idx": torch.tensor([0, 1, 2])}), "not torch.int32"),
    ("unequal lengths", topk_message(**{"x::val": torch.ones(2)}), "equal length"),
    (
        "2-D values",
        topk_message(
            **{"x::idx": torch.zeros(1, 3, dtype=torch.int32), "x::val": torch.ones(1, 3)}
        ),
        "1-D",
    ),  # fmt: skip
    ("integer values", topk_message(**{"x::val": torch.ones(3, dtype=torch.int32)}), "1-D"),
    ("shape not a list", topk_message(20), "non-negative ints"),
    ("negative shape", topk_message((-4, -5)), "non-negative ints"),
    (
        "no values",
        save(
            {"x::idx": torch.zeros(1, dtype=torch.int32)},
            envelope(codec="topk:0.1", codec_meta={"tensors": '{"x": [3]}'}),
        ),
        "x::val",
    ),  # fmt: skip
    ("int8 broadcast scale", int8_message(torch.ones(1000)), "scale is not a scalar"),
    (
        "int8 float64 scale",
        int8_message(torch.tensor(1.0, dtype=torch.float64)),
        "not torch.float32",
    ),
    ("int8 unknown dtype", int8_message(torch.tensor(1.0), "complex64"), "no floating dtype"),
    ("int8 dtype not a string", int8_message(torch.tensor(1.0), ["float32"]), "no floating dtype"),
    (
        "fp16 wire not float16",
        save(
            {"x": torch.ones(2)}, envelope(codec="fp16", codec_meta={"tensors": '{"x": "float32"}'})
        ),
        "not torch.float16",
    ),  # fmt: skip
    ("facts not JSON", save({}, envelope(codec="fp16", codec_meta={"tensors": "{"})), "not JSON"),
    ("facts a list", save({}, envelope(codec="fp16", codec_meta={"tensors": "[]"})), "JSON object"),
]


@pytest.mark.parametrize(
    ("data", "match"), [c[1:] for c in BAD_CODEC_DATA], ids=[c[0] for c in BAD_CODEC_DATA]
)
def test_bad_codec_data_is_refused(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode(data)


BAD_ENVELOPES: list[tuple[str, Any, str]] = [
    ("no metadata", {}, "no 'simnet' metadata"),
    ("not JSON", {"simnet": "{"}, "not a message"),
    ("deep", {"simnet": "[" * 10**5}, "nested too deeply"),
    ("missing key", {"simnet": json.dumps({"src": "a"})}, "with keys"),
    (
        "extra key",
        {"simnet": json.dumps({**json.loads(envelope()["simnet"]), "x": 1})},
        "with keys",
    ),
    ("int src", envelope(src=1), "src is int"),
    ("bool id", envelope(id=True), "id is bool"),
    ("float id", envelope(id=1.5), "id is float"),
    ("str size_bytes", envelope(size_bytes="9"), "size_bytes is str"),
    ("negative size_bytes", envelope(size_bytes=-1), "non-negative int"),
    ("list meta", envelope(meta=[]), "meta is list"),
    ("NaN meta", {"simnet": envelope(meta={"x": 0})["simnet"].replace("0", "NaN")}, "non-finite"),
    (
        "1e400 meta",
        {"simnet": envelope(meta={"x": 0})["simnet"].replace("0", "1e400")},
        "non-finite",
    ),
    ("codec_meta values", envelope(codec_meta={"tensors": {}}), "map strings to strings"),
    ("unknown codec", envelope(codec="zip"), "bad codec 'zip'"),
    ("codec not a string", envelope(codec=None), "codec is NoneType"),
]


@pytest.mark.parametrize(
    ("meta", "match"), [c[1:] for c in BAD_ENVELOPES], ids=[c[0] for c in BAD_ENVELOPES]
)
def test_bad_envelopes_are_refused(meta: dict[str, str], match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode(save({}, meta))


def test_size_bytes_with_a_payload_is_refused() -> None:
    with pytest.raises(DecodeError, match="only be declared for a message without payload"):
        decode(save({"x": torch.ones(1)}, envelope(size_bytes=10)))
