"""simnet's safetensors writer gives the bytes of ``safetensors.torch.save`` (the oracle):
the message sizes the network charges depend on them; its reader gives the tensors of
``safetensors.torch.load``."""

from __future__ import annotations

import random

import pytest
import torch
from safetensors.torch import load
from safetensors.torch import save as reference

from simnet.wire.safetensors_bytes import DTYPES, save
from simnet.wire.safetensors_bytes import load as read

NAMES = ["a", "b.weight", "é", 'q"uote', "back\\slash", "tab\tx", "ctl\u0001", "/", "😀", "Z"]
UNSIGNED = (torch.uint16, torch.uint32, torch.uint64)


def random_tensor(rng: random.Random, dtype: torch.dtype) -> torch.Tensor:
    shape = [rng.randint(0, 3) for _ in range(rng.randint(0, 3))]
    x = torch.randn(shape, generator=torch.Generator().manual_seed(rng.randint(0, 1 << 30)))
    return (x.abs() * 9).to(torch.int64).to(dtype) if dtype in UNSIGNED else (x * 9).to(dtype)


def test_random_dicts_encode_to_the_reference_bytes():
    rng = random.Random(7)
    metadata = [None, {"simnet": '{"a":"b\\"c"}'}, {"simnet": "é\n\u0002"}, {"": ""}]
    for _ in range(300):
        tensors = {
            rng.choice(NAMES) + str(rng.randint(0, 9)): random_tensor(rng, rng.choice(list(DTYPES)))
            for _ in range(rng.randint(0, 8))
        }
        meta = rng.choice(metadata)
        assert save(tensors, meta) == reference(tensors, metadata=meta), (list(tensors), meta)


def test_views_sharing_storage_and_non_contiguous_tensors_are_written_by_value():
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    tensors = {"t": base.t(), "row": base[1], "col": base[:, 2]}
    data = save(tensors)
    copies = {k: v.contiguous().clone() for k, v in tensors.items()}
    assert data == reference(copies)
    back = load(data)
    assert all(torch.equal(back[k], copies[k]) for k in copies)


def test_a_dtype_safetensors_cannot_hold_is_refused():
    with pytest.raises(ValueError, match="'z': dtype torch.complex64"):
        save({"z": torch.zeros(2, dtype=torch.complex64)})


def test_several_metadata_keys_are_written_sorted_and_read_back():
    """(safetensors itself writes them in its hash map's order, which varies)"""
    meta = {"zeta": "1", "simnet": "2", "a": "3"}
    data = save({"t": torch.ones(2)}, meta)
    assert data == save({"t": torch.ones(2)}, dict(reversed(meta.items())))
    assert data.index(b'"a":"3"') < data.index(b'"simnet":"2"') < data.index(b'"zeta":"1"')
    assert torch.equal(load(data)["t"], torch.ones(2))


def as_bytes(t: torch.Tensor) -> bytes:
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def test_reading_gives_the_tensors_safetensors_reads():
    rng = random.Random(11)
    for _ in range(200):
        tensors = {
            rng.choice(NAMES) + str(rng.randint(0, 9)): random_tensor(rng, rng.choice(list(DTYPES)))
            for _ in range(rng.randint(0, 8))
        }
        data = reference(tensors, metadata={"simnet": "{}"})
        got, want = read(data), load(data)
        assert got.keys() == want.keys()
        for k in want:
            assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
            assert as_bytes(got[k]) == as_bytes(want[k]), k
        for t in got.values():  # writable (safetensors' tensors are too)
            t.zero_()
