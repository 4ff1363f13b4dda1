"""Run a scenario to completion and write its run directory."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from simnet.config.scenario import Scenario
from simnet.engine.energy import EnergyMeter
from simnet.engine.sim_runtime import SimRuntime
from simnet.engine.world import World
from simnet.report.energy import energy_summary, with_energy_rows
from simnet.report.figures import write_run_figures
from simnet.report.records import write_run
from simnet.report.summary import fault_summary, incomplete_reason, network_summary, timing_summary
from simnet.workloads import WORKLOADS
from simnet.workloads.base import WorkloadRun


@dataclass
class Simulated:
    """What one simulation left: its world, its workload, why the clock stopped early
    (``None``: it did not) and the wall-clock instants (``time.perf_counter``, s) of its
    start, of the end of the set-up and of the end of the simulation."""

    world: World
    workload: WorkloadRun
    stopped: str | None
    wall: tuple[float, float, float]

    @cached_property
    def timing(self) -> dict[str, Any]:
        """``virtual_time_s`` (the run's length T) and the other timing figures."""
        return timing_summary(self.world, self.workload.finished_at)

    @cached_property
    def energy(self) -> EnergyMeter:
        """The nodes' energy over [0, T]."""
        return EnergyMeter(self.world, self.timing["virtual_time_s"])


@contextmanager
def _torch_threads(threads: int):
    """torch's intra-op thread count set to ``threads`` for the block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def simulate(scenario: Scenario, progress: bool = True) -> Simulated:
    """Build ``scenario``'s world and workload and run the clock until the workload is
    done, no event is left, or the time limit (a progress bar unless told not to)."""
    started = time.perf_counter()
    world = scenario.world()
    kind = WORKLOADS[scenario.workload.kind]  # type: ignore[attr-defined]

    def advance(n: float) -> None:
        bar.update(n)
        jobs = f", {executor.in_flight} jobs in flight" if executor.in_flight else ""
        bar.set_postfix_str(f"virtual {world.env.now:.4g} s{jobs}", refresh=False)

    executor = scenario.executor()
    try:
        runtime = SimRuntime(world, executor, scenario.config.execution.device)
        workload = kind.Run(scenario.workload, world, advance, runtime)
        bar = tqdm(
            total=workload.progress_total, unit=workload.progress_unit, desc=scenario.name,
            disable=not progress, leave=False, dynamic_ncols=True,
        )  # fmt: skip
        workload.start()
        until = workload.until
        limit = scenario.time_limit_s if until is None else until  # a stop time set
        set_up = time.perf_counter()
        try:
            stopped = world.run(until=limit, idle=until is not None)
        finally:
            bar.close()
    finally:
        executor.close()  # also when the workload cannot be built
    if stopped is None and until is None and world.env.peek() < float("inf"):
        stopped = f"the clock reached execution.time_limit_s = {limit:g} s with events left"
    world.network.settle()
    return Simulated(world, workload, stopped, (started, set_up, time.perf_counter()))


def summarize(scenario: Scenario, run: Simulated) -> dict[str, Any]:
    """The run's ``summary.json``: ``complete``, timing, network, faults, then the
    workload's own figures (and ``incomplete_reason`` when not complete)."""
    world, workload = run.world, run.workload
    started, set_up, simulated = run.wall
    summary: dict[str, Any] = {
        "name": scenario.name,
        "complete": workload.finished,
        "mode": "sim",
        "seed": scenario.seed,
        "threads": scenario.threads,
        "backend": scenario.config.execution.backend,
        "device": scenario.config.execution.device,
        "workload": scenario.workload.kind,  # type: ignore[attr-defined]
        **run.timing,
        "wall_time_s": time.perf_counter() - started,
        "wall_phases_s": {"setup": set_up - started, "simulation": simulated - set_up},
        **network_summary(world),
        "faults": fault_summary(world),
        **energy_summary(run.energy),
        **workload.summary(),
    }
    if not summary["complete"]:
        summary["incomplete_reason"] = incomplete_reason(world, run.stopped)
    return summary


def run_scenario(
    scenario: Scenario, out_dir: Path, progress: bool = True, figures: bool = True
) -> dict[str, Any]:
    """Simulate ``scenario``, write ``out_dir`` (and its ``figures/`` unless told not
    to) and return its summary; ``summary["complete"]`` says whether the workload
    finished (else ``incomplete_reason`` says who waited for what)."""
    with _torch_threads(scenario.threads):
        run = simulate(scenario, progress)
        summary = summarize(scenario, run)
    world = run.world
    tables = run.workload.tables()
    metrics = with_energy_rows(world.metrics, run.energy)
    write_run(out_dir, scenario.as_run(out_dir), world.network.transfers, metrics, summary, tables)
    if figures:
        write_run_figures(out_dir)
    return summary
