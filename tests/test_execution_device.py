"""``execution.device``: refused with one line where it cannot work; on a CUDA machine a
federated run trains there, with CPU tensors in its messages."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch

from learning.data.synthetic import mosei_like
from learning.federated import Learner
from learning.models import build_model
from learning.train import TrainConfig
from simnet.cli import main
from simnet.config.scenario import load_scenario
from simnet.runner import run_scenario

SCENARIOS = Path(__file__).parents[1] / "scenarios"
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def one_error_line(capsys, *args: str) -> str:
    assert main(["validate", *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_cuda_where_torch_sees_no_gpu_is_one_line(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = one_error_line(capsys, str(SCENARIOS / "mosei_async.yaml"), "--set",
                          "execution.device=cuda")  # fmt: skip
    assert "mosei_async.yaml: execution.device: no CUDA device here" in line


def test_cuda_is_for_federated_workloads_only(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for name, kind in (("traffic_dumbbell.yaml", "traffic"), ("mlecs_mosei.yaml", "mlecs")):
        line = one_error_line(capsys, str(SCENARIOS / name), "--set", "execution.device=cuda")
        assert f"execution.device: only federated workloads train on cuda, not {kind}" in line


def test_cuda_with_ray_is_refused(capsys, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    line = one_error_line(capsys, str(SCENARIOS / "mosei_async.yaml"), "--set",
                          "execution.backend=ray", "--set", "execution.device=cuda")  # fmt: skip
    assert "execution.device: cuda with backend ray is not supported" in line


def test_a_cpu_learner_pickles_its_device_and_trains_with_cpu_states():
    dims = {"text": 6, "audio": 4}
    factory = partial(build_model, "mult", dims, 1, width=8, layers=1, heads=2)
    config = TrainConfig(epochs=1, batch_size=8)
    learner = Learner(factory, "regression", config, config, 3, device="cpu")
    assert learner.work is learner.model  # no second copy on the CPU
    assert learner.__reduce__()[1][-1] == "cpu"
    split = mosei_like(24, 4, 4, seq_len=5, dims=dims, seed=1).train
    state = learner.local_update(learner.initial, split, seed=5)
    assert all(v.device.type == "cpu" for v in state.values())


@CUDA
def test_a_cuda_learner_trains_on_the_gpu_close_to_the_cpu_and_returns_cpu_states():
    dims = {"text": 6, "audio": 4}
    factory = partial(build_model, "mult", dims, 1, width=8, layers=1, heads=2)
    config = TrainConfig(epochs=1, batch_size=8)
    cpu = Learner(factory, "regression", config, config, 3)
    gpu = Learner(factory, "regression", config, config, 3, device="cuda")
    assert next(gpu.work.parameters()).device.type == "cuda"
    assert next(gpu.model.parameters()).device.type == "cpu"  # FLOPs counted on the CPU
    split = mosei_like(24, 4, 4, seq_len=5, dims=dims, seed=1).train
    a = cpu.local_update(cpu.initial, split, seed=5)
    b = gpu.local_update(gpu.initial, split, seed=5)
    assert all(v.device.type == "cpu" for v in b.values())
    assert (
        cpu.local_update_job(cpu.initial, split, 5).flops
        == gpu.local_update_job(gpu.initial, split, 5).flops
    )
    moved = max(float((a[k] - cpu.initial[k]).abs().max()) for k in a)
    assert moved > 0 and max(float((a[k] - b[k]).abs().max()) for k in a) < 0.05 * moved


@CUDA
def test_a_federated_run_on_cuda_completes(tmp_path):
    scenario = load_scenario(
        SCENARIOS / "mosei_async.yaml",
        [
            "execution.device=cuda",
            "workload.data.train=270",
            "workload.data.test=90",
            "workload.cloud.updates=4",
            "workload.inference.requests=4",
        ],
    )
    summary = run_scenario(scenario, tmp_path / "run", progress=False, figures=False)
    assert summary["complete"] and summary["device"] == "cuda"
