"""The same FedAvg workload in Flower's simulation engine, in simnet's ``flat`` mode, and
as a bare loop: wall times side by side.

Optional; Flower's simulation extra pins a Ray of its own, so install it apart:

    python -m venv --system-site-packages .venv-flower
    .venv-flower/bin/pip install "flwr[simulation]"
    .venv-flower/bin/python bench/peers/flower_fedavg.py [--scenario scenarios/mosei_flat.yaml]
                                                         [--rounds 4] [--cpus 2]

All three run the scenario's workload: its model and initial weights, its data dealt to
the ends as simnet deals them, every end each round, its local epochs, batch size and
learning rate, and the sample-weighted average of the updates. The bare loop is the same
local updates one after another with no framework: the floor both frameworks add to.
simnet's figures are whole runs (its network, compute model, per-round evaluation and
run directory included), with learning jobs inline and in a pool of ``--cpus`` workers
(Flower's clients run in ``--cpus`` Ray workers). Each prints the final held-out MAE of
the global model.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from learning.federated import Learner
from learning.models import build_model
from simnet.config.scenario import load_scenario
from simnet.runner import run_scenario
from simnet.workloads.federated import end_datasets, ends_in_order, load_data, roles

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Workload:
    """A flat FedAvg scenario's learner, the ends' train splits and the test split."""

    learner: Learner
    splits: list
    test: object
    seed: int


def workload(path: str, rounds: int) -> Workload:
    scenario = load_scenario(path, overrides(rounds))
    cfg = scenario.workload
    dataset = load_data(cfg.data, scenario.seed)  # type: ignore[attr-defined]
    factory = partial(build_model, cfg.model.name, dataset.feature_dims(), 1,  # type: ignore[attr-defined]
                      **cfg.model.options)  # type: ignore[attr-defined]  # fmt: skip
    local = cfg.end.training.train_config()  # type: ignore[attr-defined]
    learner = Learner(factory, dataset.task, local, local, scenario.seed)
    _, children = roles(scenario.topology)
    ends = ends_in_order(children)
    data = end_datasets(dataset, ends, cfg.partition, scenario.seed)  # type: ignore[attr-defined]
    return Workload(learner, [data[e].train for e in ends], dataset.test, scenario.seed)


def overrides(rounds: int) -> list[str]:
    return ["workload.inference=null", "workload.cloud.mode=flat",
            f"workload.cloud.updates={rounds}"]  # fmt: skip


def mae(w: Workload, state: dict) -> float:
    return w.learner.evaluate(state, w.test)["mae"]


def bare_loop(w: Workload, rounds: int) -> tuple[float, float]:
    state = w.learner.initial
    sizes = [len(s) for s in w.splits]
    started = time.perf_counter()
    for r in range(rounds):
        states = [w.learner.local_update(state, s, 1000 * r + i) for i, s in enumerate(w.splits)]
        state = w.learner.aggregate(states, sizes)
    return time.perf_counter() - started, mae(w, state)


def simnet_flat(path: str, rounds: int, backend: str, cpus: int) -> tuple[float, float]:
    execution = [f"execution.backend={backend}"]
    if backend != "inline":
        execution.append(f"execution.workers={cpus}")
    scenario = load_scenario(path, [*overrides(rounds), *execution])
    with tempfile.TemporaryDirectory() as out:
        summary = run_scenario(scenario, Path(out) / "run", progress=False, figures=False)
    return summary["wall_time_s"], summary["cloud"]["mae"]


_cached: dict[str, Workload] = {}


def _client_workload() -> Workload:
    """The workload in a Flower client's process (built once per process)."""
    key = os.environ["SIMNET_FLOWER"]
    if key not in _cached:
        path, rounds = key.rsplit(":", 1)
        _cached[key] = workload(path, int(rounds))
    return _cached[key]


def flower(path: str, rounds: int, cpus: int) -> tuple[float, float]:
    from flwr.client import ClientApp, NumPyClient
    from flwr.common import Context, ndarrays_to_parameters
    from flwr.server import ServerApp, ServerAppComponents, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.simulation import run_simulation

    os.environ["SIMNET_FLOWER"] = f"{path}:{rounds}"
    w = workload(path, rounds)
    keys = list(w.learner.initial)

    class Client(NumPyClient):
        def __init__(self, index: int) -> None:
            self.index = index

        def fit(self, parameters, config):
            c = _client_workload()
            state = {k: torch.from_numpy(v) for k, v in zip(keys, parameters, strict=True)}
            seed = 1000 * int(config["round"]) + self.index
            new = c.learner.local_update(state, c.splits[self.index], seed)
            return [v.numpy() for v in new.values()], len(c.splits[self.index]), {}

    def client_fn(context: Context):
        return Client(int(context.node_config["partition-id"])).to_client()

    final: list[float] = []

    def evaluate_fn(server_round, parameters, config):
        if server_round == rounds:
            state = {k: torch.from_numpy(v) for k, v in zip(keys, parameters, strict=True)}
            final.append(mae(w, state))
        return None

    n = len(w.splits)
    initial = ndarrays_to_parameters([v.numpy() for v in w.learner.initial.values()])

    def server_fn(context: Context):
        strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=n,
                          min_available_clients=n, initial_parameters=initial,
                          on_fit_config_fn=lambda r: {"round": r - 1},
                          evaluate_fn=evaluate_fn)  # fmt: skip
        return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=rounds))

    started = time.perf_counter()
    run_simulation(ServerApp(server_fn=server_fn), ClientApp(client_fn=client_fn),
                   num_supernodes=n,
                   backend_config={"client_resources": {"num_cpus": 1},
                                   "init_args": {"num_cpus": cpus}})  # fmt: skip
    return time.perf_counter() - started, final[-1] if final else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "mosei_flat.yaml"))
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    w = workload(args.scenario, args.rounds)
    print(f"{len(w.splits)} clients, {args.rounds} rounds ({args.scenario})")
    for name, fn in (
        ("bare loop", lambda: bare_loop(w, args.rounds)),
        ("simnet flat", lambda: simnet_flat(args.scenario, args.rounds, "inline", args.cpus)),
        ("  pool", lambda: simnet_flat(args.scenario, args.rounds, "pool", args.cpus)),
        ("flower", lambda: flower(args.scenario, args.rounds, args.cpus)),
    ):
        wall, final = fn()
        print(f"{name:<12} {wall:8.1f} s wall   final MAE {final:.4f}")


if __name__ == "__main__":
    main()
