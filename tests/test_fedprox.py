"""FedProx local training: L(w) + (μ/2)·‖w − w⁰‖² against independent hand computations,
μ = 0 unchanged, its FLOPs, the batched path and the learner's jobs."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import pytest
import test_batched
import torch
from test_batched import DIMS, OPTIONS, disagreement, flat, one_by_one
from torch import nn

from learning import train as train_module
from learning.batched import batched_train
from learning.data.synthetic import mosei_like
from learning.federated import Learner
from learning.flops import OPTIMIZER_FLOPS, WEIGHT_DECAY_FLOPS, clear_cache
from learning.models import build_model
from learning.train import PROX_FLOPS_PER_ELEMENT, TrainConfig, train, train_flops


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    clear_cache()
    yield
    clear_cache()
    torch.set_num_threads(threads)


class Tiny(nn.Module):
    """Time-averaged text → Linear(6, 5) → tanh → dropout → Linear(5, 1); an audio head
    used only when audio is in the batch (so a text-only split leaves it out of the graph)."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden = nn.Linear(6, 5)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(5, 1)
        self.audio = nn.Linear(4, 1)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        y = self.out(self.drop(torch.tanh(self.hidden(features["text"].mean(1)))))
        if "audio" in features:
            y = y + self.audio(features["audio"].mean(1))
        return y


@pytest.fixture(scope="module")
def data():
    """40 training samples: 5 batches of 8."""
    return mosei_like(40, 4, 20, seq_len=5, dims={"text": 6, "audio": 4}, seed=3)


def tiny(seed: int = 0, dropout: float = 0.0) -> Tiny:
    torch.manual_seed(seed)
    return Tiny(dropout)


def vector(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters() if p.requires_grad])


def batches(split, cfg: TrainConfig):
    """The batches ``train`` draws (same API, same seeded generator)."""
    shuffle = torch.Generator().manual_seed(cfg.seed)
    return [(f, y) for f, y, _ in split.masked_batches(cfg.batch_size, True, shuffle)]


def data_gradient(model: nn.Module, features, labels) -> list[torch.Tensor]:
    """∇L (L1 on the batch) at the model's current weights, by plain autograd."""
    params = [p for p in model.parameters() if p.requires_grad]
    loss = (model(features).reshape(-1) - labels.float()).abs().mean()
    return list(torch.autograd.grad(loss, params, allow_unused=True))


def test_two_sgd_steps_match_the_hand_formula(data):
    """SGD: w₁ = w⁰ − η∇L(w⁰; b₁) (the proximal gradient is 0 at w⁰), then
    w₂ = w₁ − η(∇L(w₁; b₂) + μ(w₁ − w⁰)). Text only: the audio head gets no data
    gradient and must not move (its proximal gradient stays 0)."""
    split = data.train.only(["text"])
    lr, mu = 0.1, 0.5
    cfg = TrainConfig(max_steps=2, batch_size=8, lr=lr, optimizer="sgd", grad_clip=None,
                      seed=5, prox_mu=mu)  # fmt: skip
    (f1, y1), (f2, y2) = batches(split, cfg)[:2]

    hand = tiny()
    params = [p for p in hand.parameters()]
    w0 = [p.detach().clone() for p in params]
    g1 = data_gradient(hand, f1, y1)
    with torch.no_grad():
        for p, g in zip(params, g1, strict=True):
            if g is not None:
                p -= lr * g
    w1 = [p.detach().clone() for p in params]
    g2 = data_gradient(hand, f2, y2)
    with torch.no_grad():
        for p, g, a, b in zip(params, g2, w1, w0, strict=True):
            p -= lr * ((0 if g is None else g) + mu * (a - b))
    expected = vector(hand)
    assert torch.equal(hand.audio.weight, w0[4])  # no data gradient: stays at w⁰

    model = tiny()
    result = train(model, split, "regression", cfg)
    assert result.steps == 2
    got = vector(model)
    plain = tiny()
    train(plain, split, "regression", replace(cfg, prox_mu=0.0))
    # the proximal part of the second step alone: −η·μ·(w₁ − w⁰)
    pull = -lr * mu * (torch.cat([t.flatten() for t in w1]) - torch.cat([t.flatten() for t in w0]))
    assert pull.norm() > 1e-3
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got - vector(plain), pull, rtol=1e-4, atol=1e-7)


def test_adam_with_clipping_matches_torchs_optimizer_fed_the_hand_gradient(data):
    """Three Adam steps with clipping: torch's own Adam and clip_grad_norm_ on
    g = ∇L + μ(w − w⁰) computed here, against ``train``."""
    split = data.train
    mu = 2.0
    cfg = TrainConfig(max_steps=3, batch_size=8, lr=0.05, optimizer="adam", grad_clip=0.3,
                      weight_decay=0.01, seed=2, prox_mu=mu)  # fmt: skip
    hand = tiny(1)
    params = list(hand.parameters())
    w0 = [p.detach().clone() for p in params]
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    for features, labels in batches(split, cfg)[:3]:
        grads = data_gradient(hand, features, labels)
        for p, g, p0 in zip(params, grads, w0, strict=True):
            p.grad = g + mu * (p.detach() - p0)
        nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()

    model = tiny(1)
    train(model, split, "regression", cfg)
    plain = tiny(1)
    train(plain, split, "regression", replace(cfg, prox_mu=0.0))
    torch.testing.assert_close(vector(model), vector(hand), rtol=1e-5, atol=1e-6)
    assert (vector(model) - vector(plain)).norm() > 1e-3  # the term mattered


def todays_train(model: nn.Module, split, cfg: TrainConfig) -> None:
    """The local training loop as it was before FedProx (regression)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    criterion = nn.L1Loss()
    shuffle = torch.Generator().manual_seed(cfg.seed)
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        for _ in range(cfg.epochs):
            for features, labels, _ in split.masked_batches(cfg.batch_size, True, shuffle):
                out = model(features)
                loss = criterion(out.reshape(-1), labels.reshape(-1).float())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                optimizer.step()


def test_mu_zero_is_todays_training_bit_for_bit_and_adds_no_op(data, monkeypatch):
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.01, seed=4)
    reference = tiny(2, dropout=0.3)
    todays_train(reference, data.train, cfg)

    def never(*_):
        raise AssertionError("proximal term computed with mu = 0")

    monkeypatch.setattr(train_module, "proximal_term", never)
    model = tiny(2, dropout=0.3)
    train(model, data.train, "regression", replace(cfg, prox_mu=0.0))
    assert torch.equal(vector(model), vector(reference))


def test_first_step_equals_plain_training_exactly(data):
    """At w = w⁰ the proximal gradient is exactly 0."""
    cfg = TrainConfig(max_steps=1, batch_size=8, seed=1)
    plain, prox = tiny(3, dropout=0.2), tiny(3, dropout=0.2)
    a = train(plain, data.train, "regression", cfg)
    b = train(prox, data.train, "regression", replace(cfg, prox_mu=3.0))
    assert torch.equal(vector(plain), vector(prox)) and a == b


def test_a_large_mu_keeps_the_weights_near_the_start(data):
    cfg = TrainConfig(epochs=4, batch_size=8, lr=0.01, seed=0)
    start = vector(tiny(4))
    moved = {}
    for mu in (0.0, 1.0, 50.0):
        model = tiny(4)
        result = train(model, data.train, "regression", replace(cfg, prox_mu=mu))
        moved[mu] = float((vector(model) - start).norm())
        assert result.steps == 20
    assert moved[50.0] < moved[1.0] < moved[0.0]
    assert moved[50.0] < 0.5 * moved[0.0]


def test_negative_mu_is_rejected():
    with pytest.raises(ValueError, match="prox_mu"):
        TrainConfig(prox_mu=-0.1)


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_train_flops_add_the_proximal_term_per_trainable_element_and_step(
    data, optimizer, weight_decay
):
    """Every parameter in the data graph: the FedProx count exceeds the plain one by
    PROX_FLOPS_PER_ELEMENT (7) per trainable element and step; 2 epochs of 40 samples in
    batches of 16 (16, 16, 8): 6 steps. The matrix work counted is the same."""
    model = tiny()
    cfg = TrainConfig(epochs=2, batch_size=16, optimizer=optimizer, weight_decay=weight_decay)
    plain = train_flops(model, data.train, "regression", cfg)
    prox = train_flops(model, data.train, "regression", replace(cfg, prox_mu=0.1))
    assert PROX_FLOPS_PER_ELEMENT == 7
    assert prox - plain == 6 * PROX_FLOPS_PER_ELEMENT * trainable(model)
    assert train_flops(model, data.train, "regression", replace(cfg, prox_mu=9.0)) == prox
    capped = replace(cfg, prox_mu=0.1, max_steps=4)  # 16, 16, 8, 16
    four = train_flops(model, data.train, "regression", capped)
    assert four - train_flops(model, data.train, "regression", replace(capped, prox_mu=0.0)) == (
        4 * 7 * trainable(model)
    )


def test_train_flops_count_the_update_of_parameters_only_the_term_reaches(data):
    """Text only: the audio head (5 elements) gets no data gradient, so the plain step
    neither updates nor counts it; with FedProx the term gives it a gradient and the
    optimizer updates it: 7 + 13 + 2 (Adam, weight decay) more FLOPs per element."""
    model = tiny()
    split = data.train.only(["text"])
    cfg = TrainConfig(epochs=1, batch_size=8, optimizer="adam", weight_decay=0.01)
    plain = train_flops(model, split, "regression", cfg)
    prox = train_flops(model, split, "regression", replace(cfg, prox_mu=0.1))
    t, unused = trainable(model), model.audio.weight.numel() + model.audio.bias.numel()
    update = OPTIMIZER_FLOPS["adam"] + WEIGHT_DECAY_FLOPS["adam"]
    assert prox - plain == 5 * (PROX_FLOPS_PER_ELEMENT * t + update * unused)


def test_train_flops_leave_frozen_parameters_out_and_the_model_alone(data):
    model = tiny()
    model.hidden.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(epochs=1, batch_size=8, prox_mu=0.1)
    prox = train_flops(model, data.train, "regression", cfg)
    plain = train_flops(model, data.train, "regression", replace(cfg, prox_mu=0.0))
    assert prox - plain == 5 * 7 * (5 * 1 + 1 + 4 + 1)  # out and audio heads only
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# The batched path, on tests/test_batched.py's clients.
clients = test_batched.clients


@pytest.mark.parametrize(("optimizer", "tolerance"), [("sgd", 1e-5), ("adam", 2e-5)])
def test_batched_fedprox_equals_one_by_one(clients, optimizer, tolerance):
    """As tests/test_batched.py compares them: SGD on each client's update, Adam on the
    predictions. Each client is pulled towards its own start: the result differs from
    μ = 0 by far more than the tolerance."""
    splits, states, test = clients
    model = build_model("mult", DIMS, 1, **OPTIONS)
    lr = 3e-3 if optimizer == "adam" else 0.05
    cfg = TrainConfig(epochs=2, batch_size=8, lr=lr, optimizer=optimizer, prox_mu=5.0)
    seeds = [100 + c for c in range(6)]
    batched = batched_train(model, "regression", cfg, states, splits, seeds)
    plain = batched_train(model, "regression", replace(cfg, prox_mu=0.0), states, splits, seeds)
    alone = one_by_one(model, cfg, states, splits, seeds)
    for c in range(6):
        moved = flat(alone[c]) - flat(states[c])
        assert moved.norm() > 1e-3
        assert (flat(batched[c]) - flat(plain[c])).norm() > 1e-2 * moved.norm()
        error = disagreement(model, optimizer, batched[c], alone[c], moved, test)
        assert error < tolerance, (c, float(error))


def test_the_learners_local_update_job_trains_and_plans_fedprox(clients):
    splits, states, _ = clients
    factory = partial(build_model, "mult", DIMS, 1, **OPTIONS)
    local = TrainConfig(batch_size=8, prox_mu=0.5)
    owner = Learner(factory, "regression", local, TrainConfig(), 3)
    plain = Learner(factory, "regression", replace(local, prox_mu=0.0), TrainConfig(), 3)
    job = owner.local_update_job(states[0], splits[0], 11)
    expected = train_flops(owner.model, splits[0], "regression", replace(owner.local, seed=11))
    steps = -(-len(splits[0]) // 8)
    assert job.flops == expected
    base = plain.local_update_job(states[0], splits[0], 11).flops
    assert job.flops - base == steps * 7 * trainable(owner.model)
    model = factory()
    model.load_state_dict(states[0])
    train(model, splits[0], "regression", replace(local, seed=11))
    got = job.run()
    assert all(torch.equal(got[k], v) for k, v in model.state_dict().items())
