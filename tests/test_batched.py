"""Batched clients: one vectorised job equals the clients trained one by one (dropout off,
to float rounding), and the batching executor groups exactly the jobs waiting together."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from learning.batched import batched_train
from learning.data.synthetic import mosei_like
from learning.federated import Learner
from learning.models import build_model
from learning.train import TrainConfig, predict, train
from simnet import executors
from simnet.executors import BatchingExecutor, InlineExecutor

DIMS = {"text": 6, "audio": 4, "vision": 3}
NO_DROPOUT = {"attn_dropout": 0.0, "relu_dropout": 0.0, "res_dropout": 0.0,
              "embed_dropout": 0.0}  # fmt: skip
OPTIONS = {"width": 8, "layers": 1, "heads": 2, **NO_DROPOUT}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clients():
    """Six clients of 20–45 samples (1 to 6 steps of 8: partial batches, clients sitting
    steps out), each from its own initial state; a held-out set."""
    data = mosei_like(400, 4, 60, seq_len=5, dims=DIMS, seed=1)
    splits = [data.train.subset(list(range(50 * c, 50 * c + 20 + 5 * c))) for c in range(6)]
    states = []
    for c in range(6):
        torch.manual_seed(c)
        states.append(build_model("mult", DIMS, 1, **OPTIONS).state_dict())
    return splits, states, data.test


def disagreement(model, optimizer, batched, alone, moved, test) -> torch.Tensor:
    """How far a batched client's state is from the one trained alone: relative to the
    distance it ``moved`` (SGD), or through predictions on ``test`` (Adam, whose
    per-element steps amplify float noise in the weights)."""
    if optimizer == "sgd":
        return (flat(batched) - flat(alone)).norm() / moved.norm()
    model.load_state_dict(batched)
    got = predict(model, test)
    model.load_state_dict(alone)
    expected = predict(model, test)
    return (got - expected).norm() / expected.norm()


def one_by_one(model, cfg, states, splits, seeds):
    out = []
    for state, split, seed in zip(states, splits, seeds, strict=True):
        model.load_state_dict(state)
        train(model, split, "regression", TrainConfig(**{**cfg.__dict__, "seed": seed}))
        out.append({k: v.clone() for k, v in model.state_dict().items()})
    return out


def flat(state):
    return torch.cat([v.flatten().double() for v in state.values()])


@pytest.mark.parametrize(("optimizer", "tolerance"), [("sgd", 1e-5), ("adam", 2e-5)])
def test_a_batched_epoch_equals_one_by_one_training(clients, optimizer, tolerance):
    """SGD: each client's update (new − old state) within 1e-5 relative. Adam divides by
    √v, so near-zero gradients (the attention key biases', zero in exact arithmetic)
    turn rounding into visible steps: compared on the predictions, within 2e-5."""
    splits, states, test = clients
    model = build_model("mult", DIMS, 1, **OPTIONS)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=3e-3, optimizer=optimizer)
    seeds = [100 + c for c in range(6)]
    batched = batched_train(model, "regression", cfg, states, splits, seeds)
    again = batched_train(model, "regression", cfg, states, splits, seeds)
    alone = one_by_one(model, cfg, states, splits, seeds)
    for c in range(6):
        assert all(torch.equal(batched[c][k], again[c][k]) for k in batched[c])  # determinism
        moved = flat(alone[c]) - flat(states[c])
        assert moved.norm() > 1e-3  # it trained
        error = disagreement(model, optimizer, batched[c], alone[c], moved, test)
        assert error < tolerance, (c, float(error))


def learner() -> Learner:
    factory = partial(build_model, "mult", DIMS, 1, **OPTIONS)
    return Learner(factory, "regression", TrainConfig(batch_size=8), TrainConfig(), 3)


def test_the_batching_executor_runs_waiting_jobs_of_a_group_together(clients, monkeypatch):
    """(With batches from 2 jobs up, so that three make one.)"""
    monkeypatch.setattr(executors, "BATCH_MIN", 2)
    splits, states, _ = clients
    owner = learner()
    calls = []
    batch = Learner.local_updates
    monkeypatch.setattr(Learner, "local_updates",
                        lambda self, *a: calls.append(len(a[0])) or batch(self, *a))  # fmt: skip
    executor = BatchingExecutor(InlineExecutor())
    jobs = [owner.local_update_job(states[c], splits[c], 10 + c) for c in range(4)]
    other = owner.local_update_job(states[4], splits[4].only(["text"]), 14)  # another group
    merge = owner.merge_job(states[0], states[1], 0.5)
    futures = [executor.submit(j) for j in [*jobs, other, merge]]
    executor.drop(futures[3])  # given up while waiting: never runs
    assert executor.in_flight == 5 and calls == []
    first = executor.take(futures[1])  # needed: jobs 0-2 run as one batch
    assert calls == [3]
    rest = [executor.take(futures[i]) for i in (0, 2)]
    assert calls == [3]  # taken from the same batch
    expected = owner.local_updates([states[c] for c in range(3)], splits[:3], [10, 11, 12])
    assert calls == [3, 3]  # the test's own call
    for got, want in zip([rest[0], first, rest[1]], expected, strict=True):
        assert all(torch.equal(got[k], want[k]) for k in want)
    alone = executor.take(futures[4])  # a group of one runs unbatched
    assert calls == [3, 3] and all(torch.equal(alone[k], v) for k, v in other.run().items())
    assert torch.equal(executor.take(futures[5])["out.bias"], merge.run()["out.bias"])
    assert executor.in_flight == 0


def test_groups_smaller_than_the_minimum_run_one_by_one(clients, monkeypatch):
    splits, states, _ = clients
    owner = learner()
    monkeypatch.setattr(Learner, "local_updates", lambda *a: pytest.fail("batched"))
    executor = BatchingExecutor(InlineExecutor())
    jobs = [owner.local_update_job(states[c], splits[c], 10 + c) for c in range(3)]
    futures = [executor.submit(j) for j in jobs]
    for job, future in zip(jobs, futures, strict=True):
        got = executor.take(future)
        assert all(torch.equal(got[k], v) for k, v in job.run().items())


def test_with_dropout_a_clients_result_does_not_depend_on_its_batch_mates(clients):
    """Dropout masks come from each client's own seed: client 0 trained beside clients
    1–2 or beside client 5 alone ends equal to float rounding; another seed differs."""
    splits, states, _ = clients
    model = build_model("mult", DIMS, 1, width=8, layers=1, heads=2)  # MulT's dropouts on
    cfg = TrainConfig(epochs=1, batch_size=8, lr=3e-3)
    one = batched_train(model, "regression", cfg, states[:3], splits[:3], [7, 8, 9])[0]
    two = batched_train(model, "regression", cfg, [states[0], states[5]],
                        [splits[0], splits[5]], [7, 3])[0]  # fmt: skip
    other = batched_train(model, "regression", cfg, states[:2], splits[:2], [70, 8])[0]
    moved = (flat(one) - flat(states[0])).norm()
    assert (flat(one) - flat(two)).norm() < 1e-4 * moved
    assert (flat(one) - flat(other)).norm() > 1e-2 * moved
