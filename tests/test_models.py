"""Fusion models: MulT's size and wiring, masks for missing modalities, the edge adapter."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from learning.flops import forward_flops
from learning.models import MODELS, EdgeAdapter, MulT, PersonalizedModel, build_model
from learning.models.adapter import INIT_STD
from learning.models.mult import sinusoidal_positions

DIMS = {"text": 12, "audio": 5, "vision": 7}
SMALL = {"mult": {"width": 8, "layers": 2, "heads": 2}, "ef_lstm": {"hidden": 8}}
SMALL["lf_lstm"] = {"hidden": 8}


def small(name: str, dims: dict[str, int] = DIMS, out_dim: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, dims, out_dim, **SMALL[name]).eval()


def batch(n: int = 4, steps: tuple[int, int, int] = (6, 9, 3), seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return {
        m: torch.randn(n, t, d, generator=g) for (m, d), t in zip(DIMS.items(), steps, strict=True)
    }


def mult_params_by_hand(dims: dict[str, int], d: int, layers: int, out: int) -> int:
    """MulT's parameter count from its definition: conv projections, M(M−1) crossmodal
    encoders of width d, M memory encoders of width (M−1)d, residual MLP head."""

    def encoder(e: int, n_layers: int) -> int:
        attn = 3 * e * e + 3 * e + e * e + e
        ffn = e * 4 * e + 4 * e + 4 * e * e + e
        return n_layers * (attn + ffn + 2 * 2 * e) + 2 * e

    m = len(dims)
    e = (m - 1) * d
    fused = m * e
    head = 2 * (fused * fused + fused) + fused * out + out
    proj = sum(dims.values()) * d
    return proj + m * (m - 1) * encoder(d, layers) + m * encoder(e, max(layers, 3)) + head


def test_mult_at_mosei_sizes_has_the_reference_parameter_count():
    mosei = {"text": 300, "audio": 74, "vision": 35}
    model = build_model("mult", mosei, 1)
    count = sum(p.numel() for p in model.parameters())
    assert count == mult_params_by_hand(mosei, 30, 5, 1) == 1_073_731
    assert len(model.crossmodal) == 6 and len(model.memory) == 3
    assert all(len(enc.layers) == 5 for enc in model.memory.values())
    assert model.token_dim == 60


def test_two_layer_mult_still_has_three_memory_layers():
    model = small("mult")
    assert all(len(enc.layers) == 2 for enc in model.crossmodal.values())
    assert all(len(enc.layers) == 3 for enc in model.memory.values())
    count = sum(p.numel() for p in model.parameters())
    assert count == mult_params_by_hand(DIMS, 8, 2, 1)


def test_sinusoidal_positions_by_hand():
    emb = sinusoidal_positions(2, 4, torch.device("cpu"), torch.float32)
    # half = 2 frequencies: 1 and 10000^(-1); positions 1 and 2.
    expected = [
        [math.sin(1), math.sin(1e-4), math.cos(1), math.cos(1e-4)],
        [math.sin(2), math.sin(2e-4), math.cos(2), math.cos(2e-4)],
    ]
    torch.testing.assert_close(emb, torch.tensor(expected))
    assert sinusoidal_positions(3, 5, torch.device("cpu"), torch.float32)[:, 4].eq(0).all()


@pytest.mark.parametrize("name", MODELS)
def test_every_subset_of_modalities_runs(name):
    model = small(name, out_dim=3)
    x = batch()
    for k in range(1, 4):
        for mods in itertools.combinations(DIMS, k):
            out = model({m: x[m] for m in mods})
            assert out.shape == (4, 3) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="no modality"):
        model({})
    with pytest.raises(ValueError, match="unknown modalities"):
        model({"smell": x["text"]})


@pytest.mark.parametrize("name", MODELS)
def test_masked_samples_ignore_their_values_and_match_a_missing_modality(name):
    model = small(name)
    # EF-LSTM's time grid is the longest sequence given: keep it the same with audio out.
    x = batch(steps=(6, 6, 6) if name == "ef_lstm" else (6, 9, 3))
    mask = torch.tensor([True, False, True, False])
    garbage = dict(x, audio=x["audio"].clone())
    garbage["audio"][~mask] = float("nan")
    garbage["audio"][1, 0, 0] = -math.inf
    present = {"audio": mask}
    with torch.no_grad():
        masked = model(x, present)
        torch.testing.assert_close(model(garbage, present), masked)
        without_audio = model({m: x[m] for m in ("text", "vision")})
    torch.testing.assert_close(masked[~mask], without_audio[~mask])
    assert not torch.allclose(masked[mask], without_audio[mask])


@pytest.mark.parametrize("name", MODELS)
def test_samples_are_independent_of_their_batch(name):
    model = small(name)
    x = batch(n=6)
    with torch.no_grad():
        whole = model(x)
        part = model({m: v[2:4] for m, v in x.items()})
    torch.testing.assert_close(part, whole[2:4])


def test_every_mult_parameter_gets_a_gradient():
    model = small("mult").train()
    model(batch()).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


def test_a_missing_modality_skips_its_compute():
    model = small("mult")
    x = batch()
    full = forward_flops(model, (x,))
    two = forward_flops(model, ({m: x[m] for m in ("text", "audio")},))
    one = forward_flops(model, ({"text": x["text"]},))
    assert full > two > one > 0


def test_build_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown model 'gpt'"):
        build_model("gpt", DIMS)
    with pytest.raises(ValueError, match="divisible"):
        MulT(DIMS, width=10, heads=3)


def test_adapter_starts_from_the_papers_initialisation():
    adapter = EdgeAdapter(60, 1)
    weights = torch.cat([p.flatten() for n, p in adapter.named_parameters() if "bias" not in n])
    biases = [p for n, p in adapter.named_parameters() if "bias" in n]
    assert abs(weights.std().item() - INIT_STD) < 0.05 * INIT_STD
    assert abs(weights.mean().item()) < 0.05 * INIT_STD
    assert all(b.eq(0).all() for b in biases)
    assert adapter.attn.num_heads == 4


def test_personalized_model_adds_the_adapter_to_the_base():
    base = small("mult")
    model = PersonalizedModel(base).eval()
    x = batch()
    with torch.no_grad():
        tokens, weights = base.encode(x)
        expected = base(x) + model.adapter(tokens, weights)
        torch.testing.assert_close(model(x), expected)
        # The adapter is small at initialisation but not zero.
        extra = (model(x) - base(x)).abs()
    assert 0 < extra.max() < 0.05 * base(x).abs().max()


def test_adapter_ignores_absent_tokens():
    adapter = EdgeAdapter(8, 2)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, 3, 8, generator=g)
    weights = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    changed = tokens.clone()
    changed[0, 1] = 100.0
    changed[1] = 100.0
    out = adapter(tokens, weights)
    torch.testing.assert_close(adapter(changed, weights)[:2], out[:2])
    torch.testing.assert_close(out[1], adapter.out.bias)
    assert torch.isfinite(out).all()


def test_frozen_base_trains_only_the_adapter():
    model = PersonalizedModel(small("lf_lstm")).train()
    model.freeze_base()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("adapter.") for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(batch()).pow(2).mean().backward()
    optimizer.step()
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) != n.startswith("adapter."), n
    assert set(model.base.state_dict()) == set(small("lf_lstm").state_dict())
    model.freeze_base(False)
    assert all(p.requires_grad for p in model.parameters())
