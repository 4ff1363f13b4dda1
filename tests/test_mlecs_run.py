"""The ML-ECS workload on a small star: what crosses the network, MMA, determinism."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from simnet.config.scenario import load_scenario
from simnet.engine.node import Machine
from simnet.runner import run_scenario
from simnet.wire.codecs import get_codec


def scenario(tmp_path: Path, **workload: Any) -> Path:
    body = {
        "kind": "mlecs", "rounds": 2, "rho": 0.6,
        "data": {"task": "fall", "samples": 200},
        "model": {"steps": 3, "warmup_steps": 20},
        **workload,
    }  # fmt: skip
    topology = {"generate": "star", "leaves": 3, "center_tier": "cloud", "leaf_tier": "end"}
    data = {"name": "ml", "seed": 1, "topology": topology, "workload": body}
    path = tmp_path / "ml.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(path: Path, out: Path, *sets: str, spy: list | None = None, monkeypatch=None):
    if spy is not None:
        original = Machine.send

        def recording(self, message, codec=None):
            spy.append(message)
            return original(self, message, codec)

        monkeypatch.setattr(Machine, "send", recording)
    return run_scenario(load_scenario(path, list(sets)), out, progress=False, figures=False)


def test_devices_upload_lora_only_and_mma_weights_by_modality_count(tmp_path, monkeypatch):
    sent: list = []
    summary = run(
        scenario(tmp_path, method="no_se_ccl"), tmp_path / "run", spy=sent, monkeypatch=monkeypatch
    )
    uploads = [m for m in sent if m.kind == "lora_update"]
    assert len(uploads) == 2 * 3
    assert all(k.startswith("base_model.") and "lora_" in k for m in uploads for k in m.payload)
    # without SE-CCL the server's LoRA is exactly the MMA of the round's uploads
    for r in (1, 2):
        round_uploads = [m for m in uploads if m.meta["round"] == r]
        counts = [m.meta["modalities"] for m in round_uploads]
        back = next(m for m in sent if m.kind == "server_lora" and m.meta["round"] == r)
        for key, value in back.payload.items():
            expected = sum(c * m.payload[key] for c, m in zip(counts, round_uploads, strict=True))
            torch.testing.assert_close(value, expected / sum(counts))
    lora = sum(v.numel() for v in uploads[0].payload.values())
    assert summary["uploaded_parameters_per_device_round"] == dict.fromkeys(
        ("mean", "min", "max"), lora
    )
    assert 0 < summary["transmitted_share"]["min"] <= summary["transmitted_share"]["max"] < 0.05


def test_devices_get_the_server_lora_as_sent_after_the_codec(tmp_path, monkeypatch):
    import simnet.protocols.mlecs as protocol

    received: list = []
    original = protocol.load_server_lora

    def load(learner, device, shared):
        received.append(shared)
        return original(learner, device, shared)

    monkeypatch.setattr(protocol, "load_server_lora", load)
    sent: list = []
    run(
        scenario(tmp_path),
        tmp_path / "run",
        "network.codec=fp16",
        spy=sent,
        monkeypatch=monkeypatch,
    )
    shipped = [m.payload for m in sent if m.kind == "server_lora" and m.meta["round"] == 1]
    assert len(received) == 3 and len(shipped) == 3
    fp16 = get_codec("fp16")
    expected = fp16.decode(*fp16.encode(shipped[0]))
    for state in received:
        assert state.keys() == expected.keys()
        for key in state:
            assert torch.equal(state[key], expected[key])
            assert not torch.equal(state[key], shipped[0][key]) or shipped[0][key].eq(0).all()


def test_same_seed_same_records_and_standalone_sends_nothing(tmp_path):
    path = scenario(tmp_path)
    first = tmp_path / "a"
    run(path, first)
    run(path, tmp_path / "b")
    for name in ("messages.csv", "metrics.csv"):
        assert (first / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    alone = run(path, tmp_path / "alone", "workload.method=standalone")
    assert alone["bytes_total"] == 0
    for key in ("uploaded_parameters_per_device_round", "transmitted_share"):
        assert alone[key] == {"mean": 0, "min": 0, "max": 0}
    summary = json.loads((first / "summary.json").read_text())
    kinds = set(summary["bytes_by_kind"])
    assert kinds == {"representations", "lora_update", "server_lora", "stop"}


def test_multi_fedavg_shares_encoders_per_modality(tmp_path, monkeypatch):
    sent: list = []
    run(
        scenario(tmp_path, method="multi_fedavg"),
        tmp_path / "run",
        spy=sent,
        monkeypatch=monkeypatch,
    )
    uploads = [m for m in sent if m.kind == "lora_update"]
    for m in uploads:
        encoders = {k.split(".")[1] for k in m.payload if k.startswith("encoders.")}
        assert encoders and encoders <= {"acce", "rgb", "depth"}
    backs = [m for m in sent if m.kind == "server_lora"]
    by_device = {m.dst: set(m.payload) for m in backs}
    assert all(by_device[m.src] == set(m.payload) for m in uploads)  # each gets its own part
    assert not [m for m in sent if m.kind == "representations"]


@pytest.mark.parametrize("bad", ["workload.rho=1.5", "workload.rho={acce: 0.5}"])
def test_bad_rates_name_the_field(tmp_path, bad):
    from simnet.errors import InputError

    with pytest.raises(InputError, match="workload.rho"):
        load_scenario(scenario(tmp_path), [bad])


def test_a_local_checkpoint_serves_as_the_device_backbone(tmp_path):
    from learning.llm import SLM_DEFAULT, build_backbone
    from simnet.errors import InputError

    build_backbone(SLM_DEFAULT, 300, seed=7).save_pretrained(tmp_path / "tiny-gpt2")
    slm = {"family": "gpt2", "hidden": 64, "layers": 2, "heads": 2, "path": "tiny-gpt2"}
    path = scenario(tmp_path, rounds=1, model={"steps": 2, "warmup_steps": 5, "slm": slm})
    summary = run(path, tmp_path / "run")
    assert (
        summary["parameters_by_kind"]["lora_update"]
        == 3 * summary["uploaded_parameters_per_device_round"]["mean"]
    )
    with pytest.raises(
        InputError, match=r"workload.model.slm.path: checkpoint directory not found"
    ):
        load_scenario(path, ["workload.model.slm.path=missing"])


def test_lora_targets_widen_what_is_shared(tmp_path):
    path = scenario(tmp_path, rounds=1, model={"steps": 1, "warmup_steps": 2})
    narrow = run(path, tmp_path / "narrow")
    wide = run(path, tmp_path / "wide", "workload.model.lora_targets={slm: [c_attn, c_proj]}")
    # c_proj (attention output 64→64 and MLP output 256→64) adds r·(in + out) per layer
    per_layer = 8 * (64 + 64) + 8 * (256 + 64)
    extra = (
        wide["uploaded_parameters_per_device_round"]["mean"]
        - narrow["uploaded_parameters_per_device_round"]["mean"]
    )
    assert extra == 2 * per_layer


def sent_blobs(monkeypatch) -> list[bytes]:
    """Every message's encoded bytes, in send order (the order of messages.csv)."""
    import simnet.engine.node

    blobs: list[bytes] = []
    original = simnet.engine.node.encode

    def recording(message, codec=None):
        blobs.append(original(message, codec))
        return blobs[-1]

    monkeypatch.setattr(simnet.engine.node, "encode", recording)
    return blobs


def wire(run_dir: Path, blobs: list[bytes]) -> list[tuple[dict, Any]]:
    """messages.csv rows, each with its message as decoded from the bytes sent."""
    from simnet.wire.message import decode

    rows = list(csv.DictReader((run_dir / "messages.csv").open()))
    assert len(rows) == len(blobs)
    out = []
    for row, blob in zip(rows, blobs, strict=True):
        message = decode(blob)
        assert (message.src, message.dst, message.kind) == (row["src"], row["dst"], row["kind"])
        assert len(blob) == int(row["bytes"])
        out.append((row, message))
    return out


@pytest.mark.parametrize("method", ["no_se_ccl", "multi_fedavg"])
def test_server_averaging_takes_time_from_its_flops(tmp_path, monkeypatch, method):
    blobs = sent_blobs(monkeypatch)
    flops = 1.0e6  # a slow server, so the averaging takes visible time
    summary = run(
        scenario(tmp_path, method=method), tmp_path / "run",
        f"topology.profiles={{cloud: {{flops: {flops}}}}}",
    )  # fmt: skip
    rows = wire(tmp_path / "run", blobs)
    averaging_s = 0.0
    for r in (1, 2):
        uploads = [(row, m) for row, m in rows if m.kind == "lora_update" and m.meta["round"] == r]
        assert len(uploads) == 3
        # 2 FLOPs (a multiply-add) per element received, on the server's FLOP/s
        elements = sum(t.numel() for _, m in uploads for t in m.payload.values())
        expected = 2 * elements / flops
        last_in = max(float(row["t_recv"]) for row, _ in uploads)
        backs = [row for row, m in rows if m.kind == "server_lora" and m.meta["round"] == r]
        assert len(backs) == 3 and expected > 1e-3
        gaps = [float(row["t_send"]) - last_in for row in backs]
        assert gaps == pytest.approx([expected] * 3)
        averaging_s += expected
    if method == "multi_fedavg":  # no representations, no SE-CCL: averaging is all it does
        assert summary["busy_s_by_tier"]["cloud"] == pytest.approx(averaging_s)


@pytest.mark.parametrize(
    ("method", "sets"),
    [
        ("ml_ecs", ["faults.dropout={tier: end, probability: 0.4}", "workload.deadline_s=100"]),
        ("multi_fedavg", []),
    ],
)
def test_transmitted_share_comes_from_the_messages_each_device_sent(
    tmp_path, monkeypatch, method, sets
):
    import simnet.protocols.mlecs as protocol

    models = {}
    original = protocol.DeviceActor.__init__

    def capture(self, ctx, learner, device, *args):
        models[device.node] = learner.model("slm", device.modalities, seed=0)
        original(self, ctx, learner, device, *args)

    monkeypatch.setattr(protocol.DeviceActor, "__init__", capture)
    blobs = sent_blobs(monkeypatch)
    summary = run(scenario(tmp_path, method=method, rounds=3), tmp_path / "run", *sets)
    elements, rounds = {}, {}
    for _, m in wire(tmp_path / "run", blobs):
        if m.kind == "lora_update":
            elements[m.src] = elements.get(m.src, 0) + sum(t.numel() for t in m.payload.values())
            rounds.setdefault(m.src, set()).add(m.meta["round"])
    assert set(models) == set(summary["devices"])
    uploaded, shares = [], []
    for node, model in models.items():
        per_round = elements[node] / len(rounds[node]) if node in rounds else 0
        total = sum(p.numel() for p in model.parameters())
        entry = summary["devices"][node]
        assert entry["model_parameters"] == total
        assert entry["uploaded_rounds"] == len(rounds.get(node, ()))
        assert entry["uploaded_parameters_per_round"] == pytest.approx(per_round)
        assert entry["transmitted_share"] == pytest.approx(per_round / total)
        uploaded.append(per_round)
        shares.append(per_round / total)
    for key, values in (
        ("uploaded_parameters_per_device_round", uploaded),
        ("transmitted_share", shares),
    ):
        spread = {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}
        assert summary[key] == pytest.approx(spread)
    # devices of different modalities have models (encoders) of different sizes
    modality_sets = {tuple(e["modalities"]) for e in summary["devices"].values()}
    assert len(modality_sets) > 1 and len(set(shares)) > 1
    if sets:  # some device sat a round out: its share is still per round it uploaded
        assert any(len(r) < 3 for r in rounds.values())


FIRST = '''
from simnet.strategies import Strategy


class First(Strategy):
    """Takes the first device's LoRA as it is."""

    def aggregate(self, current, updates):
        assert set(current) == set(updates[0].state)  # current: the server SLM's LoRA
        return {k: v.clone() for k, v in updates[0].state.items()}
'''


def test_the_server_strategy_is_pluggable(tmp_path, monkeypatch):
    (tmp_path / "first.py").write_text(FIRST)
    sent: list = []
    path = scenario(tmp_path, method="no_se_ccl", strategy="./first.py:First")
    summary = run(path, tmp_path / "run", spy=sent, monkeypatch=monkeypatch)
    uploads = [m for m in sent if m.kind == "lora_update"]
    for r in (1, 2):
        first = next(m for m in uploads if m.meta["round"] == r and m.src == "leaf0")
        back = next(m for m in sent if m.kind == "server_lora" and m.meta["round"] == r)
        for key, value in back.payload.items():
            torch.testing.assert_close(value, first.payload[key])
    lora = sum(v.numel() for v in uploads[0].payload.values())
    assert summary["model_parameters"] >= lora
