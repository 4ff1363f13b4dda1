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

Every point is a run directory ``OUT/NNN-key=value-…``; a point whose directory is
complete (holds ``summary.json``) is not run again, so an interrupted sweep resumes.
``results.csv`` has one row per point: ``run`` (its directory), the swept values, then
every number of its ``summary.json`` (nested keys joined with ``.``); ``sweep.yaml`` is
the sweep as run.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm import tqdm

from simnet.errors import InputError
from simnet.records import atomic_write, is_complete
from simnet.validation import parse
from simnet.yaml_file import read_yaml

RESULTS = "results.csv"
SWEEP_COPY = "sweep.yaml"
"""The sweep file as run, written into the sweep directory."""


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


def _assign(key: str, value: Any) -> str:
    """A ``--set`` assignment; the value as JSON, which YAML reads back unchanged."""
    return f"{key}={json.dumps(value)}"


@dataclass
class Sweep:
    """A loaded sweep: its file, base scenario, fixed overrides and points."""

    path: Path
    config: SweepConfig

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

    def overrides(self, point: Point) -> list[str]:
        fixed = [_assign(k, v) for k, v in self.config.set.items()]
        return fixed + [_assign(k, v) for k, v in point.values.items()]


def load_sweep(path: Path | str) -> Sweep:
    """Read and check a sweep file: every point's scenario must load (a bad key gives an
    :class:`InputError` naming the sweep file and the key)."""
    from simnet.scenario import load_scenario

    path = Path(path)
    sweep = Sweep(path, parse(SweepConfig, read_yaml(path, "sweep file"), str(path)))
    if not sweep.base.is_file():
        raise InputError(str(path), "base", f"scenario not found: {sweep.base}")
    keys = [*sweep.config.set, *sweep.config.grid, *sweep.config.zip]
    for point in sweep.points():
        try:
            load_scenario(sweep.base, sweep.overrides(point))
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


def _run_point(base: Path, overrides: list[str], out: Path) -> None:
    """One point, in a worker (one torch thread: workers share the cores)."""
    import torch

    from simnet.run import run_scenario
    from simnet.scenario import load_scenario

    torch.set_num_threads(1)
    run_scenario(load_scenario(base, overrides), out, progress=False, figures=False)


def _flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _flatten(v, f"{prefix}{k}.")
    elif isinstance(data, (int, float)) and not isinstance(data, bool) or data is None:
        yield prefix.rstrip("."), data


def results_table(sweep: Sweep, out: Path) -> pd.DataFrame:
    """One row per complete point: ``run`` (directory), swept values, summary numbers."""
    rows = []
    for point in sweep.points():
        run_dir = out / point.name
        if not is_complete(run_dir):
            continue
        summary = json.loads((run_dir / "summary.json").read_text())
        row = {"run": point.name, **point.values}
        row.update((k, v) for k, v in _flatten(summary) if k not in row)
        rows.append(row)
    return pd.DataFrame(rows)


def run_sweep(
    sweep: Sweep, out: Path, workers: int = 1, progress: bool = True,
    runner: Callable[[Path, list[str], Path], None] = _run_point,
) -> pd.DataFrame:  # fmt: skip
    """Run every incomplete point (``workers`` processes; 1: in this process), write
    ``results.csv`` and return it."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / SWEEP_COPY, yaml.safe_dump(sweep.config.model_dump(), sort_keys=False))
    todo = [p for p in sweep.points() if not is_complete(out / p.name)]
    bar = tqdm(total=len(sweep.points()), initial=len(sweep.points()) - len(todo), unit="run",
               desc=sweep.path.stem, disable=not progress, dynamic_ncols=True)  # fmt: skip
    try:
        if workers <= 1:
            for point in todo:
                runner(sweep.base, sweep.overrides(point), out / point.name)
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                jobs = [
                    pool.submit(runner, sweep.base, sweep.overrides(p), out / p.name) for p in todo
                ]
                for job in as_completed(jobs):
                    job.result()
                    bar.update(1)
    finally:
        bar.close()
    table = results_table(sweep, out)
    atomic_write(out / RESULTS, table.to_csv(index=False))
    return table


def default_workers() -> int:
    """One worker per core."""
    return max(1, os.cpu_count() or 1)
