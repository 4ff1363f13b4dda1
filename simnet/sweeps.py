"""Sweeps: a grid of scenario variants, run in parallel, resumable, tabulated.

A sweep file (YAML)::

    base: mosei_async.yaml                 # a scenario, relative to the sweep file
    set: {workload.inference: null}        # fixed overrides for every point (optional)
    grid:                                  # Cartesian product of these values
      topology.links[edge-cloud].bandwidth_mbps: [1, 10, 100]
      seed: [0, 1]
    zip:                                   # lists that vary together (optional)
      workload.cloud.mode: [async, sync]
      name: [async, sync]

Every point is a run directory ``OUT/NNN-key=value-…``. A point is reused, not run
again, only when its directory holds a complete run (``summary.json`` says
``"complete": true``) of exactly the scenario the point would run now (its stored
``scenario.yaml`` equals, as data, the point's scenario as run); so an interrupted sweep
resumes, and a point made stale by an edit of the sweep file or of the base scenario,
or left incomplete, is run again, its run files and ``figures/`` cleared first.
``force`` runs every point again and clears the sweep's ``figures/`` as well.

An incomplete run (its workload did not finish) does not stop the sweep: it is a row of
the table, marked ``complete = False`` with its ``incomplete_reason``. A point whose run
raises does: the points not started are not run, those running are ended with their
workers, and :class:`PointFailed` names the point; ``results.csv`` then holds the points
finished so far, whose directories a rerun of the sweep reuses.

``results.csv`` has one row per point, in point order: ``run`` (its directory), the
swept values, ``complete``, ``incomplete_reason`` (empty when complete), then every
number of its ``summary.json`` (nested keys joined with ``.``) except the per-node
``energy`` and ``busy_s_by_node`` (their tier sums are in it) and wall-clock figures
(``wall_time_s``, any field named ``wall_*``): those differ from one execution to the
next and stay in each point's ``summary.json``, so that the table depends only on the
scenarios — the same sweep gives a byte-identical ``results.csv`` whether it ran in
one go or was killed and resumed, with any number of workers. ``sweep.yaml`` is the
sweep as run.
"""

from __future__ import annotations

import itertools
import multiprocessing
import re
import shutil
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm import tqdm

from simnet.config.validation import parse
from simnet.config.yaml_file import dump_yaml, load_yaml, read_yaml
from simnet.errors import InputError, PluginError
from simnet.executors import WorkerLost, default_workers, losing_workers, start_ray
from simnet.report.records import FIGURES, atomic_write, clear_run, is_complete, load_summary

if TYPE_CHECKING:
    import pandas as pd

    from simnet.config.scenario import Scenario

RESULTS = "results.csv"
SWEEP_COPY = "sweep.yaml"
"""The sweep file as run, written into the sweep directory."""
RESUME = "finished points are kept; run the same command again to resume"


class SweepConfig(BaseModel):
    """The sweep file's fields (see the module doc)."""

    model_config = ConfigDict(extra="forbid")

    base: str
    set: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shapes(self) -> SweepConfig:
        lengths = {len(v) for v in self.zip.values()}
        if len(lengths) > 1:
            raise ValueError(f"zip lists must have one length, got {sorted(lengths)}")
        if any(not v for v in [*self.grid.values(), *self.zip.values()]):
            raise ValueError("every swept list needs at least one value")
        return self


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its index, swept values and directory name."""

    index: int
    values: dict[str, Any]

    @property
    def name(self) -> str:
        parts = [f"{_short(k)}={v}" for k, v in self.values.items()]
        return re.sub(r"[^A-Za-z0-9=._-]+", "_", "-".join([f"{self.index:03d}", *parts]))[:120]


def _short(key: str) -> str:
    """The last part of a dotted key, with a link class kept: ``edge-cloud.bandwidth_mbps``."""
    match = re.match(r"^topology\.links\[([^\]]+)\]\.(\w+)$", key)
    return f"{match[1]}.{match[2]}" if match else key.split(".")[-1]


@dataclass
class Sweep:
    """A loaded sweep: its file, base scenario, fixed overrides and points."""

    path: Path
    config: SweepConfig
    loaded: dict[int, Scenario] = field(default_factory=dict, repr=False)
    """Each point's scenario, loaded once (by index)."""

    @property
    def base(self) -> Path:
        return self.path.parent / self.config.base

    def points(self) -> list[Point]:
        grid = list(self.config.grid.items())
        zipped = list(zip(*self.config.zip.values(), strict=True)) or [()]
        out = []
        for combo in itertools.product(*(v for _, v in grid)):
            for row in zipped:
                values = dict(zip([k for k, _ in grid], combo, strict=True))
                values.update(zip(self.config.zip, row, strict=True))
                out.append(Point(len(out), values))
        return out

    def overrides(self, point: Point) -> list[tuple[str, Any]]:
        """The fixed overrides, then the point's values, as (dotted key, value) pairs."""
        return [*self.config.set.items(), *point.values.items()]

    def scenario(self, point: Point) -> Scenario:
        """The scenario ``point`` runs (loaded on first use)."""
        from simnet.config.scenario import load_scenario

        if point.index not in self.loaded:
            self.loaded[point.index] = load_scenario(self.base, self.overrides(point))
        return self.loaded[point.index]


def load_sweep(path: Path | str) -> Sweep:
    """Read and check a sweep file: every point's scenario must load (a bad key gives an
    :class:`InputError` naming the sweep file and the key)."""

    path = Path(path)
    sweep = Sweep(path, parse(SweepConfig, read_yaml(path, "sweep file"), str(path)))
    if not sweep.base.is_file():
        raise InputError(str(path), "base", f"scenario not found: {sweep.base}")
    keys = [*sweep.config.set, *sweep.config.grid, *sweep.config.zip]
    for point in sweep.points():
        try:
            sweep.scenario(point)
        except InputError as exc:
            key = next((k for k in keys if exc.field.startswith(k) or k in exc.field), None)
            if key is None and exc.source == "--set":
                key = exc.field
            section = next(
                (s for s in ("set", "grid", "zip") if key in getattr(sweep.config, s)), "grid"
            )
            where = f"{section}.{key}" if key else exc.field
            raise InputError(str(path), where, f"{exc.message} (in {exc.source})") from None
    return sweep


class PointFailed(Exception):
    """The run of a sweep's point raised (its worker was not lost): ``run_dir`` and
    ``values`` name the point, ``error`` says what it raised, ``traceback`` is the
    failure's traceback as text (a plug-in's: the user's frames)."""

    def __init__(self, run_dir: Path, values: dict[str, Any], error: str, traceback: str) -> None:
        self.run_dir, self.values, self.error, self.traceback = run_dir, values, error, traceback
        super().__init__(run_dir, values, error, traceback)

    def __str__(self) -> str:
        values = ", ".join(f"{k}={v}" for k, v in self.values.items())
        return f"point {self.run_dir} ({values}) failed: {self.error}; {RESUME}"


@contextmanager
def _failing(point: Point, run_dir: Path) -> Iterator[None]:
    """Turn an exception of ``point``'s run in the block into :class:`PointFailed`; a lost
    worker (:class:`WorkerLost`) passes through."""
    try:
        yield
    except WorkerLost:
        raise
    except Exception as exc:
        ray = sys.modules.get("ray")
        if ray is not None and isinstance(exc, ray.exceptions.RayTaskError) and exc.cause:
            exc = exc.cause  # the task's own exception
        if isinstance(exc, PluginError):
            error, text = str(exc), exc.traceback
        else:
            error, text = f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc))
        raise PointFailed(run_dir, point.values, error, text) from exc


def _point_cores(scenario: Scenario) -> int:
    """The cores a run of ``scenario`` takes: its ``execution.threads``, times its job
    workers when a pool or Ray runs its jobs."""
    execution = scenario.config.execution
    if execution.backend == "inline":
        return execution.threads
    return execution.threads * (execution.workers or default_workers(execution.threads))


def sweep_workers(sweep: Sweep) -> int:
    """Sweep workers when the user sets no count: as many as the cores hold at the most
    cores a point takes (:func:`~simnet.executors.default_workers`)."""
    return default_workers(max(_point_cores(sweep.scenario(p)) for p in sweep.points()))


def _run_point(base: Path, overrides: list[tuple[str, Any]], out: Path) -> None:
    """One point, in a worker or in this process (with the scenario's
    ``execution.threads``, whichever runs it)."""
    from simnet.config.scenario import load_scenario
    from simnet.runner import run_scenario

    run_scenario(load_scenario(base, overrides), out, progress=False, figures=False)


def _flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _flatten(v, f"{prefix}{k}.")
    elif isinstance(data, (int, float)) and not isinstance(data, bool) or data is None:
        yield prefix.rstrip("."), data


def _wall_clock(key: str) -> bool:
    """Whether a flattened summary key is a wall-clock figure (``wall_time_s``, ``wall_*``)."""
    return any(part.startswith("wall_") for part in key.split("."))


PER_NODE = ("energy", "busy_s_by_node")
"""Summary entries with a value per node: left out of ``results.csv`` (a column per node
and state would grow with the topology); their sums per tier are in it."""


def _tabled(key: str) -> bool:
    """Whether a flattened summary key goes into ``results.csv``."""
    return not _wall_clock(key) and key.split(".", 1)[0] not in PER_NODE


def _as_data(value: Any) -> Any:
    """``value`` as it reads back from ``scenario.yaml`` (lists, not tuples; floats exact)."""
    return load_yaml(dump_yaml(value))


def reusable(sweep: Sweep, point: Point, run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a complete run of the scenario ``point`` runs now."""
    if not is_complete(run_dir):
        return False
    try:
        stored = load_yaml((run_dir / "scenario.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return stored == _as_data(sweep.scenario(point).as_run(run_dir))


def results_table(sweep: Sweep, out: Path, points: list[Point] | None = None) -> pd.DataFrame:
    """One row per point (of ``points``, default all), in point order: ``run``
    (directory), swept values, ``complete``, ``incomplete_reason``, summary numbers except
    wall-clock ones (a point with no readable ``summary.json`` is an incomplete row
    without numbers)."""
    import pandas as pd  # not on import: the CLI imports this module for every command

    rows = []
    for point in sweep.points() if points is None else points:
        summary = load_summary(out / point.name)
        complete = summary is not None and summary.get("complete") is True
        if summary is None:
            reason = "no summary.json"
        elif complete:
            reason = ""
        else:
            reason = str(summary.get("incomplete_reason") or "summary.json is not marked complete")
        row = {"run": point.name, **point.values, "complete": complete}
        row["incomplete_reason"] = reason
        row.update((k, v) for k, v in _flatten(summary or {}) if k not in row and _tabled(k))
        rows.append(row)
    return pd.DataFrame(rows)


def run_sweep(
    sweep: Sweep, out: Path, workers: int = 1, progress: bool = True,
    runner: Callable[[Path, list[tuple[str, Any]], Path], None] = _run_point, force: bool = False,
    backend: str = "pool", address: str | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Run every point that is not :func:`reusable` (all of them with ``force``), its run
    files cleared first, in ``workers`` processes (``backend`` ``pool``; 1: in this
    process) or as Ray tasks (``ray``: a local Ray of ``workers`` CPUs, or the cluster at
    ``address``, whose workers must see ``out``); write ``results.csv`` and return it.
    Incomplete runs are rows with ``complete`` false. A run that raises stops the sweep
    at once with :class:`PointFailed` (a lost worker: :class:`WorkerLost`), after
    ``results.csv`` of the points finished so far."""
    out.mkdir(parents=True, exist_ok=True)
    if force and (out / FIGURES).is_dir():
        shutil.rmtree(out / FIGURES)
    atomic_write(out / SWEEP_COPY, dump_yaml(sweep.config.model_dump()))
    points = sweep.points()
    todo = [p for p in points if force or not reusable(sweep, p, out / p.name)]
    for point in todo:
        clear_run(out / point.name)
    calls = [(sweep.base, sweep.overrides(p), out / p.name) for p in todo]
    bar = tqdm(total=len(points), initial=len(points) - len(todo), unit="run",
               desc=sweep.path.stem, disable=not progress, dynamic_ncols=True)  # fmt: skip
    try:
        if workers <= 1 and backend == "pool":
            for point, call in zip(todo, calls, strict=True):
                with _failing(point, out / point.name):
                    runner(*call)
                bar.update(1)
        else:
            with _started(runner, calls, workers, backend, address) as jobs:
                of = dict(zip(jobs, todo, strict=True))
                for job in as_completed(jobs):
                    point = of[job]
                    with (
                        _failing(point, out / point.name),
                        losing_workers("a sweep worker", RESUME),
                    ):
                        job.result()
                    bar.update(1)
    except (PointFailed, WorkerLost) as exc:  # the table of the points finished so far
        failed = exc.run_dir if isinstance(exc, PointFailed) else None
        done = [p for p in points if out / p.name != failed and load_summary(out / p.name)]
        atomic_write(out / RESULTS, results_table(sweep, out, done).to_csv(index=False))
        raise
    finally:
        bar.close()
    table = results_table(sweep, out)
    atomic_write(out / RESULTS, table.to_csv(index=False))
    return table


def _start_worker() -> None:
    """A sweep worker's tqdm lock: a thread lock, as its bars are off; the default, a
    multiprocessing lock, is reported leaked when a failing sweep ends the worker."""
    tqdm.set_lock(threading.RLock())


@contextmanager
def _started(
    runner: Callable[..., None], calls: list[tuple], workers: int, backend: str,
    address: str | None,
) -> Iterator[list[Future]]:  # fmt: skip
    """Futures of ``runner(*call)`` for every call, in spawned processes or Ray tasks; if
    the block raises, the calls not started are dropped and the running ones ended with
    their processes, at once."""
    if backend == "ray":
        import ray

        started = start_ray(workers, address)
        task = ray.remote(num_cpus=1)(runner)
        refs = [task.remote(*call) for call in calls]
        try:
            yield [ref.future() for ref in refs]
        except BaseException:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise
        finally:
            if started:
                ray.shutdown()
        return
    # spawned, not forked: a fork of a process whose torch has run threads can deadlock
    # in the child (OpenMP is not fork-safe)
    spawn = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=spawn, initializer=_start_worker)
    try:
        yield [pool.submit(runner, *call) for call in calls]
    except BaseException:
        # no public way to end the workers before Python 3.14 (terminate_workers)
        for process in list(pool._processes.values()):
            process.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
