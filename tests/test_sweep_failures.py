"""A sweep point that raises stops the sweep at once, naming the point, its finished
points kept; sweep and job workers by default take no more cores than there are."""

from __future__ import annotations

import functools
import os
import re
import time
from pathlib import Path

import pandas as pd
import pytest
from test_sweep import counting, write_sweep

import simnet.sweeps
from simnet.cli import EXIT_FAILED, main
from simnet.config.scenario import load_scenario
from simnet.executors import default_workers
from simnet.report.records import is_complete
from simnet.sweeps import load_sweep, run_sweep

SLOW_S = 60.0
"""How long a slow point sleeps before it runs: a sweep that waits for one takes longer."""


def boom_or_slow(base: Path, overrides: list[tuple[str, object]], run_dir: Path) -> None:
    """Seed 0 runs at once; seed 1 raises once seed 0 has finished; the others write their
    process id, sleep :data:`SLOW_S`, then run."""
    seed = dict(overrides)["seed"]
    first = run_dir.parent / "000-seed=0" / "summary.json"
    if seed == 1:
        deadline = time.monotonic() + SLOW_S
        while not first.is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        raise ValueError("boom at run time")
    if seed > 1:
        pids = run_dir.parent.parent / "pids"
        pids.mkdir(exist_ok=True)
        (pids / run_dir.name).write_text(str(os.getpid()))
        time.sleep(SLOW_S)
    simnet.sweeps._run_point(base, overrides, run_dir)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_failing_point_stops_the_sweep_at_once_and_keeps_the_finished(tmp_path):
    path = write_sweep(tmp_path, {"seed": [0, 1, 2, 3, 4]})
    sweep = load_sweep(path)
    names = [p.name for p in sweep.points()]
    out = tmp_path / "out"
    started = time.monotonic()
    with pytest.raises(Exception, match=re.escape(str(out / names[1]))) as err:
        run_sweep(sweep, out, workers=2, progress=False, runner=boom_or_slow)
    elapsed = time.monotonic() - started
    assert elapsed < SLOW_S / 2  # no slow point was waited for
    assert isinstance(err.value, simnet.sweeps.PointFailed)
    assert "seed=1" in str(err.value) and "ValueError: boom at run time" in str(err.value)
    assert "boom_or_slow" in err.value.traceback  # the worker's frames
    pids = [int(p.read_text()) for p in (tmp_path / "pids").iterdir()]
    assert pids and not any(alive(pid) for pid in pids)  # the slow points' workers ended
    assert is_complete(out / names[0])
    assert not any(is_complete(out / name) for name in names[1:])
    results = pd.read_csv(out / "results.csv")
    assert list(results["run"]) == [names[0]] and bool(results.loc[0, "complete"])
    calls: list[str] = []
    table = run_sweep(load_sweep(path), out, progress=False, runner=counting(calls))
    assert calls == names[1:]  # the finished point is not run again
    assert table["complete"].all() and len(table) == 5


def test_the_cli_names_the_failing_point_in_one_line_exit_1(tmp_path, monkeypatch, capsys):
    path = write_sweep(tmp_path, {"seed": [0, 1, 2]})
    names = [p.name for p in load_sweep(path).points()]
    calls: list[str] = []
    real = counting(calls)

    def runner(base, overrides, run_dir):
        if dict(overrides)["seed"] == 1:
            raise RuntimeError("bad point")
        real(base, overrides, run_dir)

    monkeypatch.setattr(simnet.sweeps, "run_sweep", functools.partial(run_sweep, runner=runner))
    out = tmp_path / "out"
    status = main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"])
    assert status == EXIT_FAILED == 1
    assert calls == names[:1]  # the point after the failing one never started
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: sweep failed: point {out / names[1]} (seed=1) ")
    assert "RuntimeError: bad point" in errors[0] and "run the same command again" in errors[0]
    assert list(pd.read_csv(out / "results.csv")["run"]) == names[:1]


def cores(monkeypatch, count: int | None, affinity: int | None = None) -> None:
    """This process sees ``count`` cores, ``affinity`` of them its own (None: no affinity)."""
    monkeypatch.setattr(os, "cpu_count", lambda: count)
    if affinity is None:
        monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    else:
        monkeypatch.setattr(
            os, "sched_getaffinity", lambda pid: set(range(affinity)), raising=False
        )


def test_default_workers_times_threads_fit_the_cores(monkeypatch):
    cores(monkeypatch, 64, affinity=6)  # the affinity mask, not the machine, counts
    assert [default_workers(t) for t in (1, 2, 3, 4, 6, 8)] == [6, 3, 2, 1, 1, 1]
    assert default_workers() == 6
    cores(monkeypatch, 8)
    assert [default_workers(t) for t in (1, 3, 16)] == [8, 2, 1]
    cores(monkeypatch, None)
    assert default_workers(4) == 1


def test_a_pool_run_takes_cores_over_threads_workers_unless_set(tmp_path, monkeypatch):
    cores(monkeypatch, 8)
    path = write_sweep(tmp_path, {"seed": [0]})
    base = path.parent / "one_flow.yaml"
    for sets, workers in [
        (["execution.threads=2"], 4),
        (["execution.threads=3"], 2),
        (["execution.threads=4", "execution.workers=5"], 5),  # both set: as given
    ]:
        executor = load_scenario(base, ["execution.backend=pool", *sets]).executor()
        try:
            assert executor.pool._max_workers == workers
        finally:
            executor.close()


def test_a_sweep_by_default_takes_cores_over_its_points_threads(tmp_path, monkeypatch):
    cores(monkeypatch, 8)
    path = write_sweep(tmp_path, {"execution.threads": [1, 2]})
    assert simnet.sweeps.sweep_workers(load_sweep(path)) == 4  # the most a point takes: 2
    assert simnet.sweeps.sweep_workers(load_sweep(write_sweep(tmp_path, {"seed": [0]}))) == 8
    pooled = write_sweep(tmp_path, {"execution.threads": [2]}, set={"execution.backend": "pool"})
    assert simnet.sweeps.sweep_workers(load_sweep(pooled)) == 1  # a point's jobs take all 8
    chosen: list[int] = []

    def recording(sweep, out, workers, **options):
        chosen.append(workers)
        return run_sweep(sweep, out, 1, **options, runner=counting([]))

    monkeypatch.setattr(simnet.sweeps, "run_sweep", recording)
    path = write_sweep(tmp_path, {"execution.threads": [1, 2]})
    simnet.sweep(path, out=tmp_path / "a", progress=False, figures=False)
    simnet.sweep(path, 3, out=tmp_path / "b", progress=False, figures=False)  # --workers 3
    assert chosen == [4, 3]
