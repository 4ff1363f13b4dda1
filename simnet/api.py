"""simnet as a library: run, sweep, run live and compare, with results as pandas frames.

Every function writes the same files as the command of the same name (the CLI is a thin
layer over these) and returns what they hold. A user mistake raises
:class:`~simnet.errors.InputError` with the one-line message the CLI prints; an exception
inside a plug-in (the user's strategy, model or data code) raises
:class:`~simnet.errors.PluginError` and leaves no run directory that looks complete.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simnet.config.scenario import Overrides, Scenario, load_scenario
from simnet.errors import InputError
from simnet.report.result import Result, SweepResult, load_run, load_sweep_result

if TYPE_CHECKING:
    from simnet.live.merge import Part
    from simnet.report.compare import Comparison

ScenarioSource = str | Path | Mapping[str, Any] | Scenario
"""A scenario: a YAML file, a mapping of its fields, or a loaded :class:`Scenario`."""


def load(
    scenario: ScenarioSource,
    overrides: Overrides | None = None,
    seed: int | None = None,
    base_dir: str | Path | None = None,
) -> Scenario:
    """The validated scenario (``overrides`` as ``--set``: a mapping of dotted keys to
    values, or ``key=value`` texts; a mapping's relative paths resolved against
    ``base_dir``, default the working directory)."""
    if isinstance(scenario, Scenario):
        if not overrides and seed is None:
            return scenario
        return load_scenario(scenario.as_run(), overrides, seed)  # its paths are absolute
    return load_scenario(scenario, overrides, seed, base_dir)


def default_out(scenario: Scenario, mode: str = "") -> Path:
    """``runs/NAME[-MODE]-YYYYmmdd-HHMMSS`` (a ``-N`` suffix if that exists)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{scenario.name}-{mode}" if mode else scenario.name
    out = Path("runs") / f"{name}-{stamp}"
    suffix = 1
    while out.exists():
        out = Path("runs") / f"{name}-{stamp}-{suffix}"
        suffix += 1
    return out


def _writable(out: Path, force: bool, holds: str = "files") -> None:
    """``out`` can take a run: not a file; empty, absent, or ``force`` given."""
    if out.exists() and not out.is_dir():
        raise InputError(str(out), "", "is a file, not a directory; choose a directory")
    if holds == "files" and out.is_dir() and any(out.iterdir()) and not force:
        raise InputError(
            str(out), "", "already holds files; choose another directory or pass --force"
        )
    if holds == "a run" and (out / "summary.json").exists():
        raise InputError(str(out), "", "already holds a run; choose another directory")


def run(
    scenario: ScenarioSource,
    overrides: Overrides | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    *,
    base_dir: str | Path | None = None,
    force: bool = False,
    figures: bool = True,
) -> Result:
    """Simulate ``scenario`` and write its run directory ``out`` (default
    ``runs/NAME-YYYYmmdd-HHMMSS``; one that holds files only with ``force``, which
    replaces the run's files); the run as a :class:`Result` (complete or not: see
    ``Result.complete``)."""
    from simnet.report.records import clear_run
    from simnet.runner import run_scenario

    loaded = load(scenario, overrides, seed, base_dir)
    out_dir = Path(out) if out is not None else default_out(loaded)
    _writable(out_dir, force)
    if force:
        clear_run(out_dir)
    run_scenario(loaded, out_dir, progress=progress, figures=figures)
    return load_run(out_dir)


def sweep(
    path: str | Path,
    workers: int | None = None,
    backend: str = "pool",
    out: str | Path | None = None,
    progress: bool = True,
    *,
    force: bool = False,
    address: str | None = None,
    figures: bool = True,
) -> SweepResult:
    """Run the sweep file ``path`` into ``out`` (default ``runs/sweep-NAME``), reusing
    complete points, in ``workers`` processes (default: as many as the cores hold,
    :func:`~simnet.sweeps.sweep_workers`) or Ray tasks (``backend="ray"``, on the cluster
    at ``address`` if given); with its figures. A point whose run raises stops the sweep:
    :class:`~simnet.sweeps.PointFailed`."""
    from simnet.report.plot import plot
    from simnet.sweeps import load_sweep, run_sweep, sweep_workers

    if backend not in ("pool", "ray"):
        raise InputError("--backend", "", f"must be pool or ray (got {backend!r})")
    if address and backend != "ray":
        raise InputError("--address", "", "only with --backend ray")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise InputError("--backend", "", 'ray is not installed: pip install -e ".[ray]"')
    if workers is not None and workers < 1:
        raise InputError("--workers", "", f"must be at least 1 (got {workers})")
    loaded = load_sweep(path)
    out_dir = Path(out) if out is not None else Path("runs") / f"sweep-{Path(path).stem}"
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(str(out_dir), "", "is a file, not a directory; choose a directory")
    run_sweep(loaded, out_dir, workers or sweep_workers(loaded), progress=progress, force=force,
              backend=backend, address=address)  # fmt: skip
    if figures:
        plot(out_dir)
    return load_sweep_result(out_dir)


def load_sweep(path: str | Path) -> SweepResult:
    """The sweep already run into directory ``path``."""
    return load_sweep_result(path)


def live(
    scenario: str | Path,
    overrides: Overrides | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    *,
    processes: int | None = None,
    shaping: str = "app",
    curve: bool = False,
    keys: str | Path | None = None,
    hosts: str | Path | None = None,
    time_limit_s: float = 600.0,
    only: str | Sequence[str] | None = None,
) -> Result | Part:
    """Run the scenario file's actors for real (OS processes over ZeroMQ, links emulated
    in wall-clock time) and write the run directory ``out`` (default
    ``runs/NAME-live-…``). Raises ``RuntimeError`` if a process fails.

    Across machines, each runs this with the same scenario, ``hosts`` file and ``keys``,
    and ``only`` its own nodes (a list, or ``"a,b"``): it writes its part of the run to
    ``out`` (default ``runs/NAME-live-part-…``) and returns it as a :class:`Part`;
    :func:`live_merge` joins the parts."""
    from simnet.live.launch import live_run
    from simnet.live.merge import PART_FILE, Part

    if not time_limit_s > 0:
        raise InputError("--time-limit", "", f"must be > 0 seconds (got {time_limit_s:g})")
    if keys is not None and not curve:
        raise InputError("--keys", "", "only with --curve (keys authenticate CURVE)")
    if shaping not in ("app", "none"):
        raise InputError("--shaping", "", f"must be app or none (got {shaping!r})")
    least = 2 if only is None else 1
    if processes is not None and processes < least:
        raise InputError("--processes", "", f"a live run needs at least {least} here")
    nodes = [n for n in only.split(",") if n] if isinstance(only, str) else only
    loaded = load_scenario(scenario, overrides, seed)
    out_dir = Path(out) if out is not None else default_out(loaded, "live-part" if only else "live")
    _writable(out_dir, False, holds="a run")
    if nodes is not None and (out_dir / PART_FILE).exists():
        raise InputError(str(out_dir), "", "already holds a part; choose another directory")
    done = live_run(
        str(scenario), overrides, seed, out_dir, processes, shaping, curve,
        None if keys is None else Path(keys), None if hosts is None else Path(hosts),
        time_limit_s, progress=progress, only=None if nodes is None else list(nodes),
    )  # fmt: skip
    return done if isinstance(done, Part) else load_run(out_dir)


def live_merge(parts: Sequence[str | Path], out: str | Path | None = None) -> Result:
    """Join the parts of a live run across machines (the directories its launchers wrote)
    into the run directory ``out`` (default ``runs/NAME-live-…``). Parts of different
    runs, overlapping parts or missing nodes are an :class:`InputError` naming the part."""
    from simnet.live.merge import read_parts, write_live_run

    if not parts:
        raise InputError("live merge", "", "needs the parts of a run")
    checked = read_parts([Path(p) for p in parts])
    out_dir = Path(out) if out is not None else default_out(load(checked[0]["scenario"]), "live")
    _writable(out_dir, False, holds="a run")
    write_live_run(checked, out_dir)
    return load_run(out_dir)


def compare(sim: str | Path, live: str | Path, out: str | Path | None = None) -> Comparison:
    """Compare a simulated run with a live run of the same scenario; writes
    ``compare.csv`` and ``compare.png`` to ``out`` (default: the live run's directory)."""
    from simnet.report.compare import compare_runs

    return compare_runs(Path(sim), Path(live), Path(out if out is not None else live))
