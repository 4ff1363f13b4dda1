"""The ML-ECS paper's other baselines (Co-PLMs, FediLoRA, FedMLLM): their rules on
hand-made tensors, and tiny runs of each."""

from __future__ import annotations

import json

import pytest
import torch
from test_mlecs_run import run, scenario, sent_blobs, wire

from learning.mlecs import MlecsSettings
from learning.mlecs_baselines import (
    CONNECTOR,
    DEBIAS,
    EDIT_FLOPS_PER_ELEMENT,
    FEDILORA_RANK,
    baseline_settings,
    dimension_wise_average,
    editing_flops,
    intermediate_layers,
    layer_edit,
    mutual_learning_loss,
    proximal_term,
    rank_slice,
    regularised_keys,
    regulariser_weight,
)

A, B = "m.layer.lora_A.weight", "m.layer.lora_B.weight"


# ------------------------------------------------------------------------------ FediLoRA
def test_dimension_wise_average_reweights_each_rank_dimension_by_its_holders():
    torch.manual_seed(0)
    small = {A: torch.randn(2, 3), B: torch.randn(4, 2), "bias": torch.full((2,), 1.0)}
    large = {A: torch.randn(4, 3), B: torch.randn(4, 4), "bias": torch.full((2,), 5.0)}
    merged = dimension_wise_average([small, large], [1.0, 3.0])
    # rank dimensions 0–1: both clients, weights 1/4 and 3/4; dimensions 2–3: only `large`
    expected_a = torch.cat([(small[A] + 3 * large[A][:2]) / 4, large[A][2:]])
    expected_b = torch.cat([(small[B] + 3 * large[B][:, :2]) / 4, large[B][:, 2:]], dim=1)
    torch.testing.assert_close(merged[A], expected_a)
    torch.testing.assert_close(merged[B], expected_b)
    torch.testing.assert_close(merged["bias"], torch.full((2,), 4.0))
    # zero-padding `small` to rank 4 would scale dimensions 2–3 by 3/4: diluted
    padded = {A: torch.cat([small[A], torch.zeros(2, 3)]), B: torch.cat([small[B],
              torch.zeros(4, 2)], dim=1)}  # fmt: skip
    naive_a = (padded[A] + 3 * large[A]) / 4
    torch.testing.assert_close(naive_a[2:], 0.75 * large[A][2:])
    assert not torch.allclose(naive_a, merged[A])
    # a client of rank 2 gets the first two dimensions back
    back = rank_slice(merged, small)
    assert back[A].shape == (2, 3) and back[B].shape == (4, 2)
    torch.testing.assert_close(back[A], expected_a[:2])
    torch.testing.assert_close(back[B], expected_b[:, :2])
    # equal ranks: the plain weighted average
    same = dimension_wise_average([large, large], [1.0, 2.0])
    torch.testing.assert_close(same[A], large[A])


def test_layer_edit_replaces_only_the_layers_that_drifted_from_the_global_model():
    torch.manual_seed(1)
    kept_a, kept_b = torch.randn(2, 3), torch.randn(5, 2)
    local = {
        "l0.lora_A.weight": kept_a, "l0.lora_B.weight": kept_b,
        "l1.lora_A.weight": torch.tensor([[1.0, 0, 0], [0, 0, 0]]),
        "l1.lora_B.weight": torch.zeros(5, 2),
        "encoders.x.weight": torch.ones(2),
    }  # fmt: skip
    received = {  # rank 4: the local rank-2 layers compare with its first 2 dimensions
        "l0.lora_A.weight": torch.cat([2 * kept_a, torch.randn(2, 3)]),  # cos 1 after the cut
        "l0.lora_B.weight": torch.cat([2 * kept_b, torch.randn(5, 2)], dim=1),
        "l1.lora_A.weight": torch.tensor([[0, 1.0, 0], [0, 0, 1.0], [1.0, 1, 1], [1, 1, 1]]),
        "l1.lora_B.weight": torch.ones(5, 4),  # cos with l1's local layer: 0
    }  # fmt: skip
    edited, replaced = layer_edit(local, received, threshold=0.5)
    assert replaced == ["l1"]
    assert edited["l0.lora_A.weight"] is kept_a and edited["l0.lora_B.weight"] is kept_b
    torch.testing.assert_close(edited["l1.lora_A.weight"], received["l1.lora_A.weight"][:2])
    torch.testing.assert_close(edited["l1.lora_B.weight"], torch.ones(5, 2))
    assert edited["encoders.x.weight"] is local["encoders.x.weight"]
    # a threshold above 1 replaces every layer, one below −1 none
    assert layer_edit(local, received, threshold=1.01)[1] == ["l0", "l1"]
    assert layer_edit(local, received, threshold=-1.01)[1] == []
    assert editing_flops(local) == EDIT_FLOPS_PER_ELEMENT * (2 * 6 + 2 * 10)


# ------------------------------------------------------------------------------- FedMLLM
def test_fedmllm_regulariser_weights_layers_and_loss():
    assert regulariser_weight(1.0, 3, 3) == 0
    assert regulariser_weight(0.6, 1, 3) == pytest.approx(0.4)
    assert regulariser_weight(1.0, 2, 3) == pytest.approx(1 / 3)
    assert list(intermediate_layers(2)) == [0, 1]
    assert list(intermediate_layers(4)) == [1, 2]
    assert list(intermediate_layers(8)) == [2, 3, 4, 5]
    keys = [f"lm.transformer.h.{i}.attn.c_attn.lora_{m}.default.weight" for i in range(4)
            for m in "AB"] + ["fusion.weight"]  # fmt: skip
    assert regularised_keys(keys) == sorted(k for k in keys if ".h.1." in k or ".h.2." in k)
    torch.manual_seed(2)
    params = {k: torch.randn(2, 2, requires_grad=True) for k in keys}
    anchor = {k: torch.randn(2, 2) for k in keys if "lora_" in k}
    lam = regulariser_weight(1.0, 1, 3)
    term = proximal_term(params, anchor, lam)
    middle = regularised_keys(keys)
    expected = lam * sum(float(((params[k] - anchor[k]).detach() ** 2).sum()) for k in middle)
    assert float(term.detach()) == pytest.approx(expected)
    term.backward()
    for k in keys:
        if k in middle:
            torch.testing.assert_close(params[k].grad, 2 * lam * (params[k] - anchor[k]).detach())
        else:
            assert params[k].grad is None  # the first and last blocks are not held back
    assert float(proximal_term(params, {}, lam)) == 0  # round 1: no global LoRA yet


def test_baseline_settings():
    base = MlecsSettings(answers=("a", "b"), prompt="The person is")
    assert baseline_settings("fedilora", base).lora_r == FEDILORA_RANK == 24
    assert baseline_settings("fedmllm", base).prompt == "The person is" + DEBIAS
    assert baseline_settings("co_plms", base) == base == baseline_settings("ml_ecs", base)


# ------------------------------------------------------------------------------- Co-PLMs
def _pooled_probs(logits: torch.Tensor, pool: int) -> torch.Tensor:
    p = logits.softmax(-1)
    windows = [p[:, i : i + pool].mean(1) for i in range(0, p.shape[1], pool)]
    return torch.stack(windows, dim=1)


def test_mutual_learning_loss_is_both_task_losses_and_both_pooled_kls():
    torch.manual_seed(3)
    a, b = torch.randn(2, 5, 7, requires_grad=True), torch.randn(2, 7, 7, requires_grad=True)
    lb_a, lb_b = torch.tensor(0.3), torch.tensor(0.7)
    pa, pb = _pooled_probs(a.detach(), 4), _pooled_probs(b.detach(), 4)  # 2 pooled positions
    kl_ab = float((pb * (pb.log() - pa.log())).sum()) / 2  # KL(b ‖ a): a learns from b
    kl_ba = float((pa * (pa.log() - pb.log())).sum()) / 2
    loss = mutual_learning_loss(lb_a, lb_b, a, b)
    assert float(loss.detach()) == pytest.approx(0.3 + 0.7 + kl_ab + kl_ba, rel=1e-5)
    loss.backward()
    assert a.grad is not None and b.grad is not None  # each learns from the other


# ------------------------------------------------------------------------------ the runs
def _capture(monkeypatch) -> dict:
    """Each device's learner and modalities as its actor is built."""
    import simnet.protocols.mlecs as protocol

    seen = {}
    original = protocol.DeviceActor.__init__

    def capture(self, ctx, learner, device, *args):
        seen[device.node] = (learner, device.modalities)
        original(self, ctx, learner, device, *args)

    monkeypatch.setattr(protocol.DeviceActor, "__init__", capture)
    return seen


def _expected_keys(method: str, learner, modalities) -> set[str]:
    """What a device of ``method`` is meant to upload, from its model."""
    names = {n for n, p in learner.model("slm", modalities, seed=0).named_parameters()
             if p.requires_grad}  # fmt: skip
    lora = {n for n in names if "lora_" in n}
    if method == "fedilora":
        return lora
    if method == "fedmllm":
        return lora | {n for n in names if n.startswith(CONNECTOR)}
    return names  # Co-PLMs: the proxy's every trainable tensor


@pytest.mark.parametrize("method", ["co_plms", "fedilora", "fedmllm"])
def test_a_tiny_run_of_each_baseline(tmp_path, monkeypatch, method):
    seen = _capture(monkeypatch)
    blobs = sent_blobs(monkeypatch)
    path = scenario(tmp_path, method=method)
    summary = run(path, tmp_path / "a")
    assert summary["complete"] and summary["method"] == method
    rows = wire(tmp_path / "a", blobs)
    uploads = [m for _, m in rows if m.kind == "lora_update"]
    assert len(uploads) == 2 * 3
    backs = {(m.dst, m.meta["round"]): m for _, m in rows if m.kind == "server_lora"}
    assert not [m for _, m in rows if m.kind == "representations"]
    for m in uploads:
        learner, modalities = seen[m.src]
        keys = _expected_keys(method, learner, modalities)
        assert set(m.payload) == keys
        assert set(backs[(m.src, m.meta["round"])].payload) == keys  # its part comes back
        entry = summary["devices"][m.src]
        expected = sum(learner.state(learner.model("slm", modalities, 0))[k].numel() for k in keys)
        assert entry["uploaded_parameters_per_round"] == expected
        assert "f1_macro" in entry and "accuracy" in entry
    assert summary["device_f1_macro"] is not None
    if method == "fedilora":  # rank 24 on GPT-2's c_attn (64 → 192), two blocks: 3 × ML-ECS's
        assert summary["uploaded_parameters_per_device_round"]["mean"] == 2 * 24 * (64 + 192)
        assert summary["uploaded_parameters_per_device_round"]["mean"] == 3 * 2 * 8 * (64 + 192)
    if method == "co_plms":
        assert set(summary["server"]) >= {"accuracy", "f1_macro"}
    else:
        assert summary["server"] == {}
    metrics = (tmp_path / "a" / "metrics.csv").read_text()
    assert ("edited_layers" in metrics) == (method == "fedilora")
    run(path, tmp_path / "b")
    for name in ("messages.csv", "metrics.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize("method", ["fedilora", "fedmllm"])
def test_the_server_averaging_takes_time_from_its_flops(tmp_path, monkeypatch, method):
    blobs = sent_blobs(monkeypatch)
    flops = 1.0e6
    path = scenario(tmp_path, method=method)
    run(path, tmp_path / "run", f"topology.profiles={{cloud: {{flops: {flops}}}}}")
    rows = wire(tmp_path / "run", blobs)
    for r in (1, 2):
        uploads = [(row, m) for row, m in rows if m.kind == "lora_update" and m.meta["round"] == r]
        elements = sum(t.numel() for _, m in uploads for t in m.payload.values())
        last_in = max(float(row["t_recv"]) for row, _ in uploads)
        backs = [row for row, m in rows if m.kind == "server_lora" and m.meta["round"] == r]
        gaps = [float(row["t_send"]) - last_in for row in backs]
        assert gaps == pytest.approx([2 * elements / flops] * 3)


def test_co_plms_goes_on_through_drop_outs_with_a_deadline(tmp_path):
    path = scenario(tmp_path, method="co_plms", rounds=3)
    sets = ["faults.dropout={tier: end, probability: 0.4}", "workload.deadline_s=100"]
    summary = run(path, tmp_path / "run", *sets)
    assert summary["complete"]
    rounds = [e["uploaded_rounds"] for e in summary["devices"].values()]
    assert min(rounds) < 3 and set(summary["server"]) >= {"f1_macro"}
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["complete"]


def test_an_unknown_method_is_bad_input(tmp_path):
    from simnet.config.scenario import load_scenario
    from simnet.errors import InputError

    with pytest.raises(InputError, match="workload.method"):
        load_scenario(scenario(tmp_path), ["workload.method=fedprox"])
