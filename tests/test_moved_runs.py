"""Moved runs: a run's ``scenario.yaml`` gives the scenario's paths relative to the run
directory, so a sweep moved with its files resumes with nothing rerun and each run's
scenario runs again where it lies; and a run loads its dataset once."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import simnet.workloads.federated as federated
import simnet.workloads.mlecs as mlecs
from simnet.config.scenario import load_scenario
from simnet.runner import run_scenario
from simnet.sweeps import load_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]
STRATEGY = """
from simnet.strategies import FedAvg


class Mean(FedAvg):
    \"\"\"FedAvg under another name.\"\"\"
"""

SCENARIOS = Path(__file__).parents[1] / "scenarios"


def write_mosei(path: Path, n: dict[str, int]) -> None:
    """A small MOSEI pickle in MulT's layout at ``path``."""
    rng = np.random.default_rng(0)
    data = {}
    for split, size in n.items():
        data[split] = {m: rng.standard_normal((size, 4, d)) for m, d in (("text", 5),
                       ("audio", 4), ("vision", 3))}  # fmt: skip
        data[split]["labels"] = rng.uniform(-3, 3, (size, 1, 1)).astype(np.float32)
        data[split]["id"] = np.array([["vid", str(i), "0"] for i in range(size)])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(data))


def write_study(root: Path, workload: dict[str, Any], grid: dict[str, list[Any]]) -> Path:
    """``root/study/{scenario,sweep}.yaml`` with a topology file and a trace in folders
    beside ``study``; the sweep file's path."""
    (root / "topologies").mkdir(parents=True)
    shutil.copy(ROOT / "topologies" / "three_tier.yaml", root / "topologies" / "net.yaml")
    (root / "traces").mkdir()
    (root / "traces" / "down.csv").write_text("node,t_down,t_up\nend0,1000,1001\n")
    scenario = {
        "topology": "../topologies/net.yaml",
        "faults": {"trace": "../traces/down.csv"},
        "workload": workload,
    }
    study = root / "study"
    study.mkdir()
    (study / "scenario.yaml").write_text(yaml.safe_dump(scenario))
    sweep = study / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": "scenario.yaml", "grid": grid}))
    return sweep


def counting(calls: list[str]):
    """A sweep runner that runs the point and records its directory name."""

    def runner(base: Path, overrides: list[tuple[str, Any]], run_dir: Path) -> None:
        calls.append(run_dir.name)
        run_scenario(load_scenario(base, overrides), run_dir, progress=False, figures=False)

    return runner


def move_and_resume(tmp_path: Path, sweep: Path) -> tuple[Path, list[str]]:
    """Run ``sweep`` into ``tmp_path/a/out``, move ``tmp_path/a`` to ``tmp_path/b/moved``
    and run it again: the moved output folder and the points the second run ran."""
    calls: list[str] = []
    run_sweep(load_sweep(sweep), sweep.parents[1] / "out", progress=False, runner=counting(calls))
    assert len(calls) == len(load_sweep(sweep).points())
    moved = tmp_path / "b" / "moved"
    moved.parent.mkdir()
    shutil.move(sweep.parents[1], moved)
    calls.clear()
    run_sweep(load_sweep(moved / "study" / "sweep.yaml"), moved / "out", progress=False,
              runner=counting(calls))  # fmt: skip
    return moved / "out", calls


def rerun_in_place(run_dir: Path) -> None:
    """The run's ``scenario.yaml`` loads where it lies and reads back unchanged."""
    stored = yaml.safe_load((run_dir / "scenario.yaml").read_text())
    again = load_scenario(run_dir / "scenario.yaml").as_run(run_dir)
    assert yaml.safe_load(yaml.safe_dump(again)) == stored


def test_a_moved_traffic_sweep_resumes_with_nothing_rerun(tmp_path):
    transfer = {"src": "end0", "dst": "cloud", "bytes": 100_000}
    sweep = write_study(
        tmp_path / "a", {"kind": "traffic", "transfers": [transfer]}, {"seed": [0, 1]}
    )
    out, calls = move_and_resume(tmp_path, sweep)
    assert calls == []
    run_dir = out / load_sweep(tmp_path / "b" / "moved" / "study" / "sweep.yaml").points()[0].name
    assert yaml.safe_load((run_dir / "scenario.yaml").read_text())["faults"]["trace"] == (
        "../../traces/down.csv"
    )
    rerun_in_place(run_dir)


def test_a_moved_federated_sweep_with_data_and_plugin_files_resumes(tmp_path):
    """A data file in a data folder and a strategy plug-in file, both relative."""
    root = tmp_path / "a"
    write_mosei(root / "data" / "mosei.pkl", {"train": 24, "valid": 4, "test": 8})
    workload = {
        "kind": "federated",
        "data": {"source": "file", "path": "../data/mosei.pkl"},
        "partition": {"scheme": "iid"},
        "model": {"name": "mult", "options": {"width": 4, "layers": 1, "heads": 1}},
        "edge": {"strategy": "./mean.py:Mean", "adapter": False, "deadline_s": 100},
        "cloud": {"mode": "flat", "updates": 1},
    }
    sweep = write_study(root, workload, {"seed": [0]})
    (root / "study" / "mean.py").write_text(STRATEGY)
    out, calls = move_and_resume(tmp_path, sweep)
    assert calls == []
    run_dir = next(p for p in out.iterdir() if p.is_dir())
    stored = yaml.safe_load((run_dir / "scenario.yaml").read_text())["workload"]
    assert stored["data"]["path"] == "../../data/mosei.pkl"
    assert stored["edge"]["strategy"] == "../../study/mean.py:Mean"
    rerun_in_place(run_dir)


def test_a_path_given_absolute_stays_absolute(tmp_path):
    trace = tmp_path / "down.csv"
    trace.write_text("node,t_down,t_up\nleft0,1000,1001\n")
    scenario = {
        "topology": str(ROOT / "topologies" / "dumbbell.yaml"),
        "faults": {"trace": str(trace)},
        "workload": {"kind": "traffic", "transfers": [{"src": "left0", "dst": "right0",
                                                       "bytes": 1000}]},
    }  # fmt: skip
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario))
    assert load_scenario(path).as_run(tmp_path / "run")["faults"]["trace"] == str(trace)


def counted_calls(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    """A list that gets an item each time ``module.name`` is called (patched for the
    test)."""
    calls: list[int] = []
    real = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_a_run_loads_its_dataset_once(tmp_path, monkeypatch):
    loads = counted_calls(monkeypatch, federated, "mosei_like")
    scenario = {
        "topology": {"generate": "tree", "edges": 1, "ends_per_edge": 2},
        "workload": {
            "kind": "federated",
            "data": {"train": 24, "valid": 4, "test": 8, "seq_len": 4},
            "model": {"name": "mult", "options": {"width": 4, "layers": 1, "heads": 1}},
            "cloud": {"mode": "flat", "updates": 1},
        },
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario))
    summary = run_scenario(load_scenario(path), tmp_path / "run", progress=False, figures=False)
    assert summary["complete"] and len(loads) == 1


def test_an_mlecs_run_deals_the_data_its_check_dealt(monkeypatch):
    """The check's plan is what the run takes (its pool made once); a changed config
    object, or changed data settings, makes a new one."""
    pools = counted_calls(monkeypatch, mlecs, "_pool")
    scenario = load_scenario(SCENARIOS / "mlecs_mosei.yaml", ["workload.data.samples=300"])
    config, topology = scenario.workload, scenario.topology
    checked = mlecs.run_plan(config, topology, scenario.seed)
    assert len(pools) == 1 and len(checked.train) == 6
    again = mlecs.run_plan(config, topology, scenario.seed)  # taken already: made anew
    assert len(pools) == 2 and np.array_equal(again.parts["private_train"],
                                              checked.parts["private_train"])  # fmt: skip
    load_scenario(SCENARIOS / "mlecs_mosei.yaml", ["workload.data.samples=300"])
    config.data.samples = 400  # not what was checked
    assert len(mlecs.run_plan(config, topology, scenario.seed).pool) == 400 and len(pools) == 4
