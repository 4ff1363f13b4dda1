"""Learning jobs: planned with their FLOPs, run by any executor with the same result, given
up when their node crashes, and charged as compute on the node that asked."""

from __future__ import annotations

import importlib.util
import os
import pickle
from functools import partial

import pytest
import torch

from learning.data.synthetic import mosei_like
from learning.federated import Learner
from learning.jobs import Job
from learning.models import build_model
from learning.train import TrainConfig, train_flops
from simnet.actor import Crashed
from simnet.engine.faults import NodeEvent
from simnet.engine.sim_runtime import SimRuntime
from simnet.engine.world import World
from simnet.executors import InlineExecutor, PoolExecutor, RayExecutor, WorkerLost
from simnet.topology.graph import NodeSpec, Topology

DIMS = {"text": 6, "audio": 4}


def learner(seed: int = 3) -> Learner:
    factory = partial(build_model, "mult", DIMS, 1, width=8, layers=1, heads=2)
    config = TrainConfig(epochs=1, batch_size=8)
    return Learner(factory, "regression", config, config, seed)


def data():
    return mosei_like(40, 4, 4, seq_len=5, dims=DIMS, seed=1).train


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def inline_with_one_thread(job):
    """The job's result in this process, with one torch thread as the workers run."""
    here = InlineExecutor()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return here.take(here.submit(job))
    finally:
        torch.set_num_threads(threads)


def test_a_learner_pickles_as_its_recipe_and_rebuilds_the_same_model():
    original = learner()
    blob = pickle.dumps(original)
    assert len(blob) < 4_000  # the recipe, not the models' weights
    copy = pickle.loads(blob)
    assert same(copy.initial, original.initial)


def test_a_job_knows_its_flops_before_it_runs_and_records_its_inputs():
    owner, split = learner(), data()
    job = owner.local_update_job(owner.initial, split, seed=11)
    assert job.flops == train_flops(
        owner.model, split, "regression", TrainConfig(epochs=1, batch_size=8)
    )
    assert job.method == "local_update" and job.args[2] == 11 and not job.local
    merge = owner.merge_job(owner.initial, owner.initial, 0.5)
    assert merge.local and merge.flops == 3 * owner.params


RAY = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")


@pytest.mark.parametrize("backend", ["pool", pytest.param("ray", marks=RAY)])
def test_workers_run_a_job_to_the_same_bits_as_this_process(backend):
    """The same job three times on two workers (each gets one at least)."""
    owner, split = learner(), data()
    job = owner.local_update_job(owner.initial, split, seed=11)
    expected = inline_with_one_thread(job)
    kind = PoolExecutor if backend == "pool" else RayExecutor
    executor = kind(workers=2, threads=1)
    try:
        futures = [executor.submit(job) for _ in range(3)]
        assert executor.in_flight == 3
        results = [executor.take(f) for f in futures]
    finally:
        executor.close()
    assert executor.in_flight == 0
    assert not same(expected, owner.initial)  # it trained
    assert all(same(expected, r) for r in results)


@pytest.mark.parametrize("backend", ["pool", pytest.param("ray", marks=RAY)])
def test_a_worker_that_dies_ends_the_run_with_a_reason_not_a_hang(backend):
    kind = PoolExecutor if backend == "pool" else RayExecutor
    executor = kind(workers=1, threads=1)
    try:
        # os._exit(9) in the worker: it ends as if the kernel's OOM killer had struck
        future = executor.submit(Job(os._exit, "__call__", (9,), flops=1))
        with pytest.raises(WorkerLost, match="ended abruptly"):
            executor.take(future)
    finally:
        executor.close()


def test_work_charges_the_flops_then_gives_the_result_and_a_crash_gives_the_job_up():
    """b computes the job's FLOPs in 1 s: the first job ends at 1 s; the second starts at
    1.25 s and b crashes at 1.5 s, which gives the job up."""
    owner, split = learner(), data()
    job = owner.local_update_job(owner.initial, split, seed=11)
    nodes = [NodeSpec("b", "edge", float(job.flops))]
    world = World(Topology(nodes, []), node_events=[NodeEvent(1.5, "b", False)])
    executor = InlineExecutor()
    runtime = SimRuntime(world, executor)
    log = []

    async def driver():  # tied to no node: the crash does not stop it
        b = runtime.node("b")
        state = await b.work(job)
        log.append(("done", runtime.now, same(state, job.run())))
        await b.sleep(0.25)
        try:
            await b.work(job)
        except Crashed:
            log.append(("crashed", runtime.now, executor.in_flight))

    runtime.spawn(driver())
    world.run()
    assert log == [("done", 1.0, True), ("crashed", 1.5, 0)]
