"""Results must not depend on what ran before in the process (docs/design.md, rule 1):
the FLOP cache being cold or warm may change no RNG draw, so no weight and no record."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from learning.data import MultimodalSplit, fall_like
from learning.flops import clear_cache, closure_flops, forward_flops, train_step_flops
from learning.mlecs import Mlecs, MlecsSettings
from learning.train import TrainConfig, train_flops

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = MlecsSettings(
    answers=("walking", "falling", "lying"), prompt="The person is", steps=3, warmup_steps=2
)

# One fresh process, a tiny ML-ECS run (SE-CCL included) twice: first with cold FLOP
# caches, then warm. Records and every payload sent (the weights) must be identical.
SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    from pathlib import Path
    import torch
    from simnet.engine.node import Machine
    from simnet.runner import run_scenario
    from simnet.config.scenario import load_scenario

    out, sets = Path(sys.argv[1]), sys.argv[2:]
    digest = hashlib.sha256()
    original = Machine.send

    def send(self, message, codec=None):
        for key, value in sorted((message.payload or {}).items()):
            if isinstance(value, torch.Tensor):
                digest.update(f"{message.kind}/{key}".encode())
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        return original(self, message, codec)

    Machine.send = send
    for name in ("cold", "warm"):
        digest = hashlib.sha256()
        scenario = load_scenario("scenarios/mlecs_urfall.yaml", sets)
        run_scenario(scenario, out / name, progress=False, figures=False)
        (out / name / "payloads.sha256").write_text(digest.hexdigest())
    """
)
TINY = [
    "workload.method=ml_ecs",
    "workload.rounds=2",
    "workload.data.samples=200",
    "workload.model.steps=2",
    "workload.model.warmup_steps=2",
    "topology.leaves=2",
]


def test_cold_and_warm_flop_caches_give_the_same_run(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), *TINY],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("messages.csv", "metrics.csv", "payloads.sha256"):
        cold, warm = (tmp_path / run / name for run in ("cold", "warm"))
        assert cold.read_bytes() == warm.read_bytes(), name


@pytest.fixture(scope="module")
def ml():
    data = fall_like(60, 10, 30, seed=0, difficulty=0.3)
    return data, Mlecs(data.feature_dims(), SETTINGS, seed=0)


def _se_ccl_weights(ml, cold: bool) -> dict[str, torch.Tensor]:
    data, learner = ml
    llm = learner.model("llm", data.modalities, seed=1)
    slm = learner.model("slm", data.modalities, seed=2)
    if cold:
        clear_cache()
    assert learner.se_ccl_flops(llm, slm, data.train, seed=5) > 0  # counted, as a run does
    learner.se_ccl(llm, slm, data.train, seed=5)
    return {
        **{f"llm.{n}": p.detach().clone() for n, p in llm.named_parameters()},
        **{f"slm.{n}": p.detach().clone() for n, p in slm.named_parameters()},
    }


def test_se_ccl_is_the_same_with_a_cold_and_a_warm_flop_cache(ml):
    cold = _se_ccl_weights(ml, cold=True)
    warm = _se_ccl_weights(ml, cold=False)
    assert cold.keys() == warm.keys()
    assert all(torch.equal(cold[k], warm[k]) for k in cold), [
        k for k in cold if not torch.equal(cold[k], warm[k])
    ]


def _states() -> tuple[torch.Tensor, dict, tuple]:
    return torch.random.get_rng_state(), np.random.get_state(), random.getstate()


def _assert_same_states(before, after) -> None:
    assert torch.equal(before[0], after[0]), "torch's global RNG moved"
    assert before[1][0] == after[1][0] and np.array_equal(before[1][1], after[1][1])
    assert before[1][2:] == after[1][2:], "numpy's global RNG moved"
    assert before[2] == after[2], "Python's random moved"


class Noisy(nn.Module):
    """Dropout in the forward pass: counted in train mode, it draws from torch's RNG."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 6), nn.Dropout(0.5), nn.Linear(6, 3))

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(features["acce"]).mean(1)


def test_counting_leaves_every_global_rng_as_it_found_it():
    model = Noisy().train()
    features = {"acce": torch.randn(4, 2, 5)}
    batch = (features, torch.tensor([0, 1, 2, 0]))
    split = MultimodalSplit({"acce": torch.randn(10, 2, 5)}, torch.tensor([0, 1, 2] * 3 + [0]))

    def step(m):
        # a careless step drawing from every global generator is still rolled back
        noise = torch.rand(1) + float(np.random.rand()) + random.random()
        return nn.functional.cross_entropy(m(features), batch[1]) * noise

    clear_cache()
    before = _states()
    assert closure_flops(("noisy", 4), step, [model]) > 0
    _assert_same_states(before, _states())
    assert train_step_flops(model, batch, nn.CrossEntropyLoss()) > 0
    _assert_same_states(before, _states())
    assert forward_flops(model, features) > 0
    _assert_same_states(before, _states())
    assert train_flops(model, split, "classification", TrainConfig(batch_size=4)) > 0
    _assert_same_states(before, _states())
    clear_cache()


def test_mlecs_counted_passes_leave_every_global_rng_as_it_found_it(ml):
    data, learner = ml
    llm = learner.model("llm", data.modalities, seed=1)
    slm = learner.model("slm", data.modalities, seed=2)
    clear_cache()
    before = _states()
    assert learner.se_ccl_flops(llm, slm, data.train, seed=5) > 0
    assert learner.represent_flops(llm, data.train) > 0
    _assert_same_states(before, _states())
