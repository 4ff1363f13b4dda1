"""Wall time, memory and throughput of whole runs, per executor of learning jobs.

    python bench/scale.py [--scenarios scenarios/scale_1k.yaml scenarios/mosei_async.yaml]
                          [--backends inline pool] [--workers N] [--set KEY=VALUE ...]

Each (scenario, backend) runs in a fresh process and prints one row (a backend
``NAME+batched`` sets ``execution.batch_clients`` too; Ray where installed):

* wall seconds per phase (set-up: data, partition, workload; simulation) and in all;
* peak RSS of the simulator's process and of its largest pool worker (MiB); the first
  includes the states kept for the plain loop below (``kept`` MiB: subtract it);
* SimPy events per wall second of the simulation phase;
* client steps (optimizer steps of end devices' local updates) per wall second;
* the ratio of the simulation phase's wall time to a plain loop that runs the same local
  updates one by one in a fresh process (same states, data and seeds, recorded during
  the run): the simulator's overhead over the bare training it does (≈ 1 inline, below
  1 when jobs run side by side).

``tables`` is a digest of ``messages.csv`` and ``metrics.csv``: equal across backends
(batched runs differ from unbatched ones in the last digits, equal among themselves).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(scenario: str, backend: str, workers: int | None, sets: list[str]) -> dict:
    """One run in this process (the child): the row's figures."""
    import simpy
    import torch

    from learning.federated import Learner
    from simnet.config.scenario import load_scenario
    from simnet.runner import run_scenario

    events = 0
    step = simpy.Environment.step

    def counted(env: simpy.Environment) -> None:
        nonlocal events
        events += 1
        step(env)

    simpy.Environment.step = counted  # type: ignore[method-assign]
    jobs: list[tuple] = []
    plan = Learner.local_update_job

    def recorded(self: Learner, state, data, seed):
        job = plan(self, state, data, seed)
        jobs.append((self, state, data, seed))
        return job

    Learner.local_update_job = recorded  # type: ignore[method-assign]
    base, _, batched = backend.partition("+")
    overrides = [*sets, f"execution.backend={base}", f"execution.batch_clients={bool(batched)}"]
    if workers and base != "inline":
        overrides.append(f"execution.workers={workers}")
    with tempfile.TemporaryDirectory() as out:
        summary = run_scenario(load_scenario(scenario, overrides), Path(out) / "run",
                               progress=False, figures=False)  # fmt: skip
        digest = hashlib.sha256()
        for name in ("messages.csv", "metrics.csv"):
            digest.update((Path(out) / "run" / name).read_bytes())
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    kept = sum(t.nbytes for _, state, _, _ in jobs for t in state.values()) / 2**20
    steps = sum(
        owner.local.epochs * math.ceil(len(data) / owner.local.batch_size)
        for owner, _, data, _ in jobs
    )
    with tempfile.TemporaryDirectory() as folder:
        recorded = Path(folder) / "jobs.pt"
        torch.save(jobs, recorded)  # each split once: pickle shares repeated objects
        jobs.clear()
        done = subprocess.run([sys.executable, __file__, "--replay", str(recorded),
                               str(summary["threads"])], capture_output=True, text=True,
                              check=True)  # fmt: skip
    plain = float(done.stdout.strip().splitlines()[-1])
    phases = summary["wall_phases_s"]
    return {
        "scenario": Path(scenario).stem, "backend": backend, "complete": summary["complete"],
        "setup_s": phases["setup"], "simulation_s": phases["simulation"],
        "wall_s": summary["wall_time_s"], "rss_mib": rss_self, "kept_mib": kept,
        "worker_rss_mib": rss_workers,
        "events_per_s": events / phases["simulation"], "client_steps": steps,
        "steps_per_s": steps / phases["simulation"], "plain_loop_s": plain,
        "ratio": phases["simulation"] / plain, "tables": digest.hexdigest()[:12],
    }  # fmt: skip


def replay(recorded: str, threads: int) -> float:
    """Seconds of the recorded local updates, one by one, in this fresh process."""
    import torch

    jobs = torch.load(recorded, weights_only=False)
    torch.set_num_threads(threads)
    started = time.perf_counter()
    for owner, state, data, seed in jobs:
        owner.local_update(state, data, seed)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ["scenarios/scale_1k.yaml", "scenarios/mosei_async.yaml"]
    parser.add_argument("--scenarios", nargs="+", default=default)
    backends = ["inline", "pool", "inline+batched"]
    parser.add_argument("--backends", nargs="+", default=backends,
                        help="inline, pool or ray; +batched: batch_clients too")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None, help="pool workers (default: cores)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--one", nargs=2, metavar=("SCENARIO", "BACKEND"), help=argparse.SUPPRESS)
    parser.add_argument("--replay", nargs=2, metavar=("JOBS", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay:
        print(replay(args.replay[0], int(args.replay[1])))
        return
    if args.one:
        print(json.dumps(measure(*args.one, args.workers, args.set)))
        return
    header = (f"{'scenario':<12} {'backend':<14} {'set-up s':>8} {'sim s':>8} {'wall s':>8} "
              f"{'RSS MiB':>8} {'kept':>5} {'worker':>7} {'events/s':>9} {'steps/s':>8} "
              f"{'plain s':>8} {'÷ plain':>7}  tables")  # fmt: skip
    print(header)
    for scenario in args.scenarios:
        for backend in args.backends:
            command = [sys.executable, __file__, "--one", scenario, backend,
                       *(f"--set={s}" for s in args.set)]  # fmt: skip
            if args.workers:
                command.append(f"--workers={args.workers}")
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            if done.returncode:
                print(
                    f"{Path(scenario).stem:<12} {backend:<14} failed: {done.stderr.strip()[-300:]}"
                )
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{r['scenario']:<12} {r['backend']:<14} {r['setup_s']:>8.1f} "
                  f"{r['simulation_s']:>8.1f} {r['wall_s']:>8.1f} {r['rss_mib']:>8.0f} "
                  f"{r['kept_mib']:>5.0f} "
                  f"{r['worker_rss_mib']:>7.0f} {r['events_per_s']:>9,.0f} "
                  f"{r['steps_per_s']:>8.1f} {r['plain_loop_s']:>8.1f} {r['ratio']:>7.2f}  "
                  f"{r['tables']}{'' if r['complete'] else ' (incomplete)'}")  # fmt: skip


if __name__ == "__main__":
    main()
