"""Results depend on the scenario and the seed only: not on the host's thread count, not on
how many sweep workers run the points (docs/design.md, rule 1)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from simnet.config.scenario import load_scenario
from simnet.runner import run_scenario
from simnet.sweeps import load_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]
MOSEI_ASYNC = ROOT / "scenarios" / "mosei_async.yaml"
SHORT = {
    "workload.data.train": 270,
    "workload.data.test": 90,
    "workload.cloud.updates": 6,
    "workload.inference.requests": 4,
}
"""mosei_async shortened; at this size 1 and 2 intra-op threads give different metrics."""
LIGHT = {**SHORT, "workload.cloud.updates": 4, "workload.inference.requests": 2,
         "workload.end.training.epochs": 1, "workload.edge.adapter_training.epochs": 1}  # fmt: skip
"""Shorter still, for the comparisons of executors and worker counts."""
FILES = ("messages.csv", "metrics.csv")
FAULTS = ROOT / "scenarios" / "faults_mosei.yaml"
MLECS = ROOT / "scenarios" / "mlecs_urfall.yaml"
MLECS_SHORT = {"workload.rounds": 2, "workload.model.steps": 6, "workload.data.samples": 600}
RAY = importlib.util.find_spec("ray") is not None
BATCHED = {"execution.batch_clients": True, "workload.cloud.updates": 2,
           "topology": {"generate": "tree", "edges": 1, "ends_per_edge": 9}}  # fmt: skip
"""Nine alike ends under one edge: each round's nine local updates make one batch."""


def sets(extra: dict | None = None) -> list[str]:
    return [f"{k}={json.dumps(v)}" for k, v in {**SHORT, **(extra or {})}.items()]


def test_the_hosts_thread_count_does_not_change_the_results(tmp_path):
    outs = []
    for threads in ("1", "2"):
        out = tmp_path / f"omp{threads}"
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        args = [sys.executable, "-m", "simnet", "run", str(MOSEI_ASYNC), "--out", str(out),
                "--quiet", "--no-figures", *(a for s in sets() for a in ("--set", s))]  # fmt: skip
        subprocess.run(args, env=env, check=True, cwd=tmp_path, timeout=600)
        outs.append(out)
    for name in FILES:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    assert json.loads((outs[1] / "summary.json").read_text())["threads"] == 1


def test_execution_threads_is_what_the_learning_runs_with(tmp_path, monkeypatch):
    from learning.federated import Learner

    seen: set[int] = set()
    update = Learner.local_update

    def spy(self, *args, **kwargs):
        seen.add(torch.get_num_threads())
        return update(self, *args, **kwargs)

    monkeypatch.setattr(Learner, "local_update", spy)
    before = torch.get_num_threads()
    summary = run_scenario(
        load_scenario(MOSEI_ASYNC, sets({"execution.threads": 2, "workload.inference": None})),
        tmp_path / "run", progress=False, figures=False,
    )  # fmt: skip
    assert seen == {2} and summary["threads"] == 2
    assert torch.get_num_threads() == before  # the host's setting is restored


def test_sweep_workers_do_not_change_the_results(tmp_path):
    """Also: workers start cleanly after this process's torch has run threads (forked
    workers could deadlock then)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    torch.randn(512, 512).matmul(torch.randn(512, 512)).sum()
    torch.set_num_threads(threads)
    sweep = {"base": str(MOSEI_ASYNC), "set": LIGHT, "grid": {"seed": [0, 1]}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    outs = {}
    ways = [(1, "pool"), (2, "pool"), *([(2, "ray")] if RAY else [])]
    for workers, backend in ways:
        out = outs[workers, backend] = tmp_path / f"{backend}{workers}"
        run_sweep(load_sweep(path), out, workers=workers, progress=False, backend=backend)
    first = outs[1, "pool"]
    points = sorted(p.name for p in first.iterdir() if p.is_dir())
    assert len(points) == 2
    for way, out in outs.items():
        for point in points:
            for name in FILES:
                same = (first / point / name).read_bytes() == (out / point / name).read_bytes()
                assert same, f"{way}: {point}/{name}"
        assert (first / "results.csv").read_bytes() == (out / "results.csv").read_bytes()


def test_executors_and_worker_counts_do_not_change_the_results(tmp_path):
    """inline, a pool of 2 workers, 2 Ray actors (where Ray is installed): the same
    tables; inline and a pool of 2 also under faults (edge1 crashes with jobs in flight,
    ends come and go, on device profiles: energy rows), with batched clients and on
    ML-ECS. (Pools of 1 and 2 workers: the sweep test
    above.)"""
    faults = {"workload.data.train": 270, "workload.data.test": 90,
              "workload.cloud.updates": 8, "workload.inference.requests": 3,
              "topology": str(ROOT / "topologies" / "mosei_devices.yaml"),
              "faults.availability": {"kind": "markov", "mean_on_s": 3,
                                      "mean_off_s": 1}}  # fmt: skip
    pool = {"execution.backend": "pool"}
    ways = {
        "inline": {},
        "pool2": {**pool, "execution.workers": 2},
        **({"ray2": {"execution.backend": "ray", "execution.workers": 2}} if RAY else {}),
    }
    for name, path, extra, labels in (
        ("async", MOSEI_ASYNC, LIGHT, list(ways)),
        ("faults", FAULTS, faults, ["inline", "pool2"]),
        ("batched", MOSEI_ASYNC, {**LIGHT, **BATCHED}, ["inline", "pool2"]),
        ("mlecs", MLECS, MLECS_SHORT, ["inline", "pool2"]),
    ):
        outs = {}
        for label in labels:
            execution = ways[label]
            overrides = [f"{k}={json.dumps(v)}" for k, v in {**extra, **execution}.items()]
            out = outs[label] = tmp_path / name / label
            summary = run_scenario(load_scenario(path, overrides), out, progress=False,
                                   figures=False)  # fmt: skip
            backend = execution.get("execution.backend", "inline")
            assert summary["complete"] and summary["backend"] == backend
        for label in labels[1:]:
            for file in FILES:
                same = (outs["inline"] / file).read_bytes() == (outs[label] / file).read_bytes()
                assert same, f"{name}: {label}/{file}"
