"""FLOP counts of forward passes and training steps against hand calculations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from learning import flops
from learning.flops import (
    OPTIMIZER_FLOPS,
    WEIGHT_DECAY_FLOPS,
    clear_cache,
    forward_flops,
    train_step_flops,
)


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


class FeatureMLP(nn.Module):
    """Called like the project's models: ``model(features, mask=None)``."""

    def __init__(self, d_in: int = 5, hidden: int = 6) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, features: dict[str, torch.Tensor], mask: torch.Tensor | None = None):
        return self.net(features["text"])


class LastStep(nn.Module):
    def __init__(self, lstm: nn.LSTM) -> None:
        super().__init__()
        self.lstm = lstm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0][:, -1, 0]


class SelfAttention(nn.Module):
    """Linear(8, 8), split into 2 heads of 4, SDPA, summed per sample."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.proj(x).view(b, t, 2, 4).transpose(1, 2)
        return F.scaled_dot_product_attention(q, q, q).sum((1, 2, 3))


def test_linear_forward_is_two_flops_per_multiply_add():
    # B = 4, in = 5, out = 7: 2 · 4 · 5 · 7 (the bias add is not counted)
    assert forward_flops(nn.Linear(5, 7), torch.randn(4, 5)) == 280
    assert forward_flops(nn.Linear(5, 7), (torch.randn(4, 5),)) == 280


def test_feature_dict_and_argument_tuple():
    model = FeatureMLP()
    features = {"text": torch.randn(4, 5)}
    # 2 · 4 · (5 · 6 + 6 · 1) = 288, whether called model(features) or model(features, None)
    assert forward_flops(model, features) == 288
    assert forward_flops(model, (features, None)) == 288


def test_two_layer_mlp_train_step():
    model = FeatureMLP()
    batch = ({"text": torch.randn(4, 5)}, torch.randn(4))
    # forward 2·4·5·6 + 2·4·6·1 = 240 + 48 = 288
    # backward: layer 2 grad w.r.t. weight 48 and input 48, layer 1 w.r.t. weight 240;
    # layer 1 w.r.t. the input is skipped (the input needs no grad): 336, not 2 · 288
    # parameters 5·6 + 6 + 6·1 + 1 = 43
    assert train_step_flops(model, batch, nn.L1Loss(), "sgd") == 288 + 336 + 2 * 43
    assert train_step_flops(model, batch, nn.L1Loss(), "adam") == 624 + 13 * 43
    assert train_step_flops(model, batch, nn.L1Loss(), "adamw", 0.01) == 624 + 14 * 43
    assert train_step_flops(model, batch, nn.L1Loss(), "adam", 0.01) == 624 + 15 * 43


def test_frozen_parameters_change_the_count_and_the_cache_key():
    model = FeatureMLP()
    batch = ({"text": torch.randn(4, 5)}, torch.randn(4))
    assert train_step_flops(model, batch, nn.L1Loss(), "sgd") == 710
    model.net[0].requires_grad_(False)
    # forward 288; backward only layer 2's weight grad 48 (nothing upstream needs grad);
    # SGD on layer 2's 6 + 1 elements
    assert train_step_flops(model, batch, nn.L1Loss(), "sgd") == 288 + 48 + 2 * 7
    model.requires_grad_(False)
    assert train_step_flops(model, batch, nn.L1Loss(), "sgd") == 288


OPTIMIZERS = {
    "sgd": lambda ps, wd: torch.optim.SGD(ps, lr=0.1, weight_decay=wd, foreach=False),
    "sgd_momentum": lambda ps, wd: torch.optim.SGD(
        ps, lr=0.1, momentum=0.9, weight_decay=wd, foreach=False
    ),
    "adam": lambda ps, wd: torch.optim.Adam(ps, lr=0.1, weight_decay=wd, foreach=False),
    "adamw": lambda ps, wd: torch.optim.AdamW(ps, lr=0.1, weight_decay=wd, foreach=False),
}
_aten = torch.ops.aten


def _op_flops(func, args, kwargs) -> int | None:
    """FLOPs per element of one elementwise aten op, read off its definition (a multiply
    or an add is 1); None for an op this table does not know."""
    packet = func.overloadpacket
    if packet in (_aten.add, _aten.add_, _aten.sub, _aten.sub_):  # self ± alpha·other
        return 1 + int(kwargs.get("alpha", 1) != 1)
    if packet in (_aten.mul, _aten.mul_, _aten.div, _aten.div_, _aten.sqrt, _aten.sqrt_):
        return 1
    if packet in (_aten.lerp, _aten.lerp_):  # self + weight·(end − self)
        return 3
    if packet in (_aten.addcmul, _aten.addcmul_, _aten.addcdiv, _aten.addcdiv_):
        return 2 + int(kwargs.get("value", 1) != 1)  # self + value·t1 ∘ t2
    if packet in (_aten.clone, _aten.copy_, _aten.detach, _aten.alias, _aten.zeros_like):
        return 0
    return None


class _ElementwiseCounter(TorchDispatchMode):
    """Sums _op_flops over the ops whose result has ``numel`` elements (the parameter's;
    the scalar step counter and bias corrections are per tensor, not per element)."""

    def __init__(self, numel: int) -> None:
        super().__init__()
        self.numel, self.total, self.unknown = numel, 0, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if isinstance(out, torch.Tensor) and out.numel() == self.numel:
            cost = _op_flops(func, args, kwargs)
            if cost is None:
                self.unknown.append(str(func))
            else:
                self.total += cost * self.numel
        return out


def _measured_update_flops(name: str, weight_decay: float, numel: int = 7) -> int:
    """FLOPs of torch's own update of one ``numel``-element parameter, counted op by op on
    the second step (SGD's momentum buffer is a plain copy of the gradient on the first)."""
    param = nn.Parameter(torch.randn(numel))
    optimizer = OPTIMIZERS[name]([param], weight_decay)
    for _ in range(2):
        param.grad = torch.randn(numel)
        with _ElementwiseCounter(numel) as counter:
            optimizer.step()
    assert counter.unknown == [], f"ops without a hand FLOP count: {counter.unknown}"
    return counter.total


def test_every_optimizer_constant_is_measured():
    assert set(OPTIMIZER_FLOPS) == set(WEIGHT_DECAY_FLOPS) == set(OPTIMIZERS)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_constants_match_torchs_update_ops(name: str):
    numel = 7
    plain = _measured_update_flops(name, 0.0, numel)
    decayed = _measured_update_flops(name, 0.01, numel)
    assert plain == OPTIMIZER_FLOPS[name] * numel
    assert decayed - plain == WEIGHT_DECAY_FLOPS[name] * numel


def test_unknown_optimizer_is_rejected():
    with pytest.raises(ValueError, match="optimizer"):
        train_step_flops(nn.Linear(2, 1), (torch.randn(3, 2), torch.randn(3)), nn.L1Loss(), "lbfgs")


def test_lstm_matches_the_hand_formula():
    # per sample, time step and layer: 4 gates · 2 matmuls = 8·H·(I_l + H); I = 4, H = 6
    b, t, i, h = 3, 5, 4, 6
    model = LastStep(nn.LSTM(i, h, num_layers=2, batch_first=True))
    x = torch.randn(b, t, i)
    backends = torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled
    fwd = b * t * (8 * h * (i + h) + 8 * h * (h + h))  # 7200 + 8640
    assert forward_flops(model, x) == fwd == 15840
    # backward: weight grads = fwd; grads w.r.t. h_{s-1} for s ≥ 1 (h_0 is a constant):
    # 2 layers · 2·B·(T-1)·4H·H; grad w.r.t. layer 2's input (layer 1's output): 2·B·T·4H·H;
    # none w.r.t. x. SGD over 4H·(4 + 6) + 8H + 4H·(6 + 6) + 8H = 624 elements.
    bwd = fwd + 2 * (2 * b * (t - 1) * 4 * h * h) + 2 * b * t * 4 * h * h
    loss = nn.L1Loss()
    assert train_step_flops(model, (x, torch.zeros(b)), loss, "sgd") == fwd + bwd + 2 * 624
    # the reference kernels are used for counting only
    assert (torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled) == backends


def test_cpu_scaled_dot_product_attention_is_counted():
    x = torch.randn(3, 5, 8)
    proj = 2 * 3 * 5 * 8 * 8  # 1920
    scores = 2 * (3 * 2) * 5 * 5 * 4  # one (B·heads) batched T×d @ d×T product: 1200
    assert forward_flops(SelfAttention(), x) == proj + 2 * scores
    # backward: 5 such products (scores recomputed, grads of probabilities, V, Q, K) and
    # the projection's weight grad; SGD over 8·8 + 8 elements
    step = train_step_flops(SelfAttention(), (x, torch.zeros(3)), nn.L1Loss(), "sgd")
    assert step == proj + 2 * scores + 5 * scores + proj + 2 * 72


def test_transformer_inference_fast_path_is_counted():
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True).eval().requires_grad_(False)
    x = torch.randn(3, 5, 8)
    # 15 tokens: in-projection 2·15·8·24, out-projection 2·15·8·8, feed-forward 2 · 2·15·8·16,
    # attention 2 · 2·(3·2)·5·5·4
    assert forward_flops(layer, x) == 5760 + 1920 + 2 * 3840 + 2 * 1200


def test_cache_hit_does_not_recount(monkeypatch):
    made = []

    class Counting(flops.FlopCounterMode):
        def __init__(self, *args, **kwargs):
            made.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(flops, "FlopCounterMode", Counting)
    model = FeatureMLP()
    batch = ({"text": torch.randn(4, 5)}, torch.randn(4))
    first = train_step_flops(model, batch, nn.L1Loss(), "adam")
    again = train_step_flops(
        FeatureMLP(), ({"text": torch.zeros(4, 5)}, torch.zeros(4)), nn.L1Loss()
    )
    assert again == first and len(made) == 1
    forward_flops(model, batch[0])
    forward_flops(model, batch[0])
    assert len(made) == 2
    forward_flops(model, {"text": torch.zeros(8, 5)})  # another batch shape
    assert len(made) == 3
    clear_cache()
    assert train_step_flops(model, batch, nn.L1Loss(), "adam") == first and len(made) == 4


def test_counting_leaves_model_grads_mode_and_rng_alone():
    model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Dropout(0.5), nn.Linear(6, 1))
    x, y = torch.randn(4, 5), torch.randn(4)
    model(x).sum().backward()  # some existing gradients
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.grad.clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    forward_flops(model, x)
    train_step_flops(model, (x, y), nn.L1Loss(), "adam")
    assert not model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters(), strict=True))
    assert torch.equal(rng, torch.get_rng_state())


def test_closure_flops_counts_forward_backward_and_update_by_hand():
    from learning.flops import clear_cache, closure_flops

    clear_cache()
    a, b = nn.Linear(5, 3, bias=False), nn.Linear(3, 2, bias=False)
    b.weight.requires_grad_(False)
    x = torch.randn(4, 5)
    state = {k: v.clone() for k, v in a.state_dict().items()}

    def step(first, second):
        return second(first(x)).sum()

    flops = closure_flops("two-linear", step, [a, b], optimizer="adam")
    # forward 2·4·5·3 + 2·4·3·2; backward: grad of b's input 2·4·2·3 (b frozen: no weight
    # grad), a's weight grad 2·5·4·3 (x needs no grad); Adam 13 per element of a (15).
    forward = 2 * 4 * 5 * 3 + 2 * 4 * 3 * 2
    backward = 2 * 4 * 2 * 3 + 2 * 5 * 4 * 3
    assert flops == forward + backward + 13 * 15
    assert a.weight.grad is None and torch.equal(a.weight, state["weight"])
    assert closure_flops("two-linear", step, [a, b], optimizer="adam") == flops  # cached
    assert closure_flops("fwd", lambda f, s: s(f(x)).detach().sum(), [a, b], None) == forward
