"""Sweeps and plots: a bandwidth sweep on the dumbbell against the network equations,
resuming (stale, incomplete and killed points), --force, workers, link-class overrides,
bad keys, figures."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import simnet.report.plot
import simnet.sweeps
from simnet.cli import EXIT_INCOMPLETE, main
from simnet.errors import InputError
from simnet.report.plot import plot
from simnet.report.records import clear_run, is_complete
from simnet.sweeps import load_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]
SIZE = 2_000_000  # bytes


def write_sweep(tmp_path: Path, grid: dict, **extra) -> Path:
    transfer = {"src": "left0", "dst": "right0", "bytes": SIZE}
    scenario = {
        "name": "one_flow",
        "topology": str(ROOT / "topologies" / "dumbbell.yaml"),
        "workload": {"kind": "traffic", "transfers": [transfer]},
    }
    (tmp_path / "one_flow.yaml").write_text(yaml.safe_dump(scenario))
    sweep = {"base": "one_flow.yaml", "grid": grid, **extra}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def test_bandwidth_sweep_matches_the_network_model(tmp_path):
    bandwidths = [1, 5, 20, 50]
    path = write_sweep(tmp_path, {"topology.links[edge-edge].bandwidth_mbps": bandwidths})
    table = run_sweep(load_sweep(path), tmp_path / "out", workers=1, progress=False)
    times = table.set_index("topology.links[edge-edge].bandwidth_mbps")["transfer_time_s.mean"]
    for mbps in bandwidths:
        # latency 2 + 20 + 2 ms, then the bottleneck min(100, mbps) Mbit/s
        expected = 0.024 + SIZE * 8 / (min(100, mbps) * 1e6)
        assert times[mbps] == pytest.approx(expected, rel=1e-9)
    assert list(times) == sorted(times, reverse=True)  # faster links, faster transfers
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(results) == 4 and "bytes_total" in results
    assert "energy_by_tier.end.total_j" in results  # the tier sums, not a column per node
    assert not [c for c in results if c.startswith(("energy.", "busy_s_by_node"))]


def test_an_interrupted_sweep_resumes_without_rerunning(tmp_path):
    path = write_sweep(
        tmp_path, {"topology.links[edge-edge].latency_ms": [1, 10]}, zip={"seed": [0, 1]}
    )
    sweep = load_sweep(path)
    out = tmp_path / "out"
    calls: list[Path] = []

    def counting(base, overrides, run_dir):
        from simnet.config.scenario import load_scenario
        from simnet.runner import run_scenario

        calls.append(run_dir)
        run_scenario(load_scenario(base, overrides), run_dir, progress=False, figures=False)

    run_sweep(sweep, out, progress=False, runner=counting)
    assert len(calls) == 4
    victim = out / sweep.points()[2].name
    (victim / "summary.json").unlink()  # as if killed before finishing
    assert not is_complete(victim)
    calls.clear()
    table = run_sweep(sweep, out, progress=False, runner=counting)
    assert calls == [victim] and len(table) == 4


def test_bad_sweep_key_names_the_key(tmp_path):
    path = write_sweep(tmp_path, {"workload.transfers.0.bytez": [1, 2]})
    with pytest.raises(InputError) as err:
        load_sweep(path)
    assert "grid.workload.transfers.0.bytez" in str(err.value)
    path = write_sweep(tmp_path, {"topology.links[cloud-cloud].bandwidth_mbps": [1]})
    result = subprocess.run(
        [sys.executable, "-m", "simnet", "sweep", str(path), "--out", str(tmp_path / "o")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "cloud-cloud" in result.stderr
    assert "Traceback" not in result.stderr


def test_plot_writes_run_and_sweep_figures(tmp_path):
    path = write_sweep(tmp_path, {"topology.links[edge-edge].bandwidth_mbps": [2, 20]})
    out = tmp_path / "out"
    run_sweep(load_sweep(path), out, progress=False)
    sweep_files = {p.name for p in plot(out)}
    assert "knob_transfer_time_s_mean.png" in sweep_files
    assert (out / "figures" / "knob_transfer_time_s_mean.pdf").is_file()
    run_files = {p.name for p in plot(out / load_sweep(path).points()[0].name)}
    assert {"bytes_per_tier.png", "bytes_per_kind.png"} <= run_files
    with pytest.raises(ValueError):
        plot(tmp_path)


def test_plot_of_a_method_sweep_draws_shares_and_latency(tmp_path):
    """A hand-made sweep directory: categorical knob, shares, inference breakdown."""
    out = tmp_path / "sweep"
    rows = []
    for i, (method, share) in enumerate((("ml_ecs", 0.0176), ("multi_fedavg", 0.0446))):
        run = out / f"{i:03d}-method={method}"
        run.mkdir(parents=True)
        (run / "metrics.csv").write_text("t,node,metric,value\n0.0,leaf0,accuracy,0.5\n")
        (run / "scenario.yaml").write_text(
            yaml.safe_dump({"topology": {"nodes": [{"id": "leaf0", "tier": "end"}]}})
        )
        terms = {"feature_s": 0.01, "upload_s": 0.02, "compute_s": 0.0, "download_s": 0.01}
        summary = {"name": method, "inference": {"edge": terms}}
        (run / "summary.json").write_text(json.dumps(summary))
        rows.append({"run": run.name, "workload.method": method, "transmitted_share.mean": share,
                     "device_f1_macro.mean": 0.5 + i / 10})  # fmt: skip
    pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
    (out / "sweep.yaml").write_text(yaml.safe_dump({"grid": {"workload.method": []}, "zip": {}}))
    names = {p.name for p in plot(out)}
    assert {
        "knob_device_f1_macro_mean.png", "accuracy_vs_time.png", "transmitted_share.png",
        "latency_breakdown.png",
    } <= names  # fmt: skip
    assert all((out / "figures" / n).with_suffix(".pdf").is_file() for n in names)


def counting(calls: list[str]):
    """A runner that runs the point for real and records its directory name."""

    def runner(base, overrides, run_dir):
        from simnet.config.scenario import load_scenario
        from simnet.runner import run_scenario

        calls.append(run_dir.name)
        run_scenario(load_scenario(base, overrides), run_dir, progress=False, figures=False)

    return runner


def write_tree_sweep(tmp_path: Path, count: int, seeds: list[int], name="tree") -> Path:
    """A sweep over seeds of Poisson uploads on a generated tree (contention, floats)."""
    scenario = {
        "name": "uploads",
        "topology": {
            "generate": "tree", "clouds": 1, "edges": 2, "ends_per_edge": 4,
            "links": {
                "end-edge": {"latency_ms": 5, "up_mbps": 20, "down_mbps": 80},
                "edge-cloud": {"latency_ms": 30, "bandwidth_mbps": 50},
            },
        },
        "workload": {"kind": "traffic", "generate": {
            "pattern": "all_to_one", "source_tier": "end", "count": count,
            "size_bytes": {"min": 1_000_000, "max": 5_000_000}, "rate_per_s": 2.0,
        }},
    }  # fmt: skip
    folder = tmp_path / name
    folder.mkdir()
    (folder / "uploads.yaml").write_text(yaml.safe_dump(scenario))
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "uploads.yaml", "grid": {"seed": seeds}}))
    return path


def test_resume_reruns_points_made_stale_by_an_edit(tmp_path):
    path = write_sweep(tmp_path, {"topology.links[edge-edge].latency_ms": [1, 10]})
    out = tmp_path / "out"
    names = [p.name for p in load_sweep(path).points()]
    calls: list[str] = []
    run_sweep(load_sweep(path), out, progress=False, runner=counting(calls))
    assert calls == names
    plot(out / names[0])  # figures of the old run
    base = tmp_path / "one_flow.yaml"
    scenario = yaml.safe_load(base.read_text())
    scenario["workload"]["transfers"][0]["bytes"] = 2 * SIZE  # the base scenario changes
    base.write_text(yaml.safe_dump(scenario))
    calls.clear()
    table = run_sweep(load_sweep(path), out, progress=False, runner=counting(calls))
    assert calls == names and list(table["bytes_total"]) == [2 * SIZE] * 2
    assert not (out / names[0] / "figures").exists()  # stale figures cleared
    calls.clear()
    run_sweep(load_sweep(path), out, progress=False, runner=counting(calls))
    assert calls == []  # nothing changed: every point reused
    # the sweep file changes (and the base scenario back): stale again
    path = write_sweep(
        tmp_path, {"topology.links[edge-edge].latency_ms": [1, 10]},
        set={"network.bandwidth_factor": 0.5},
    )  # fmt: skip
    table = run_sweep(load_sweep(path), out, progress=False, runner=counting(calls))
    assert calls == names and list(table["bytes_total"]) == [SIZE] * 2
    stored = yaml.safe_load((out / names[1] / "scenario.yaml").read_text())
    assert stored["network"]["bandwidth_factor"] == 0.5


def test_clear_run_removes_only_the_run_files(tmp_path):
    run = tmp_path / "run"
    (run / "figures").mkdir(parents=True)
    (run / "figures" / "bytes_per_tier.png").write_bytes(b"png")
    names = ["scenario.yaml", "messages.csv", "metrics.csv", "summary.json",
             ".messages.csv.k3x9", "notes.txt"]  # fmt: skip
    for name in names:
        (run / name).write_text("x")
    clear_run(run)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    clear_run(tmp_path / "absent")  # nothing to clear: no error


def test_force_reruns_every_point_and_clears_stale_figures(tmp_path):
    path = write_sweep(tmp_path, {"topology.links[edge-edge].bandwidth_mbps": [2, 20]})
    out = tmp_path / "out"
    args = ["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"]
    assert main(args) == 0
    points = [out / p.name for p in load_sweep(path).points()]
    plot(points[0])
    (out / "figures" / "knob_gone.png").write_bytes(b"stale")
    for point in points:  # mark each finished run, to see it replaced
        summary = json.loads((point / "summary.json").read_text())
        (point / "summary.json").write_text(json.dumps({**summary, "marker": 1}))
    assert main(args) == 0  # resume: nothing to do, nothing replaced
    assert all("marker" in json.loads((p / "summary.json").read_text()) for p in points)
    assert main([*args, "--force"]) == 0
    assert not any("marker" in json.loads((p / "summary.json").read_text()) for p in points)
    assert all(is_complete(p) for p in points)
    assert not (points[0] / "figures").exists()
    figures = {p.name for p in (out / "figures").iterdir()}
    assert "knob_gone.png" not in figures and "knob_transfer_time_s_mean.png" in figures


REASON = "workload did not finish: 1 of 1 transfers undelivered"


def incomplete_when_slow(calls: list[str]):
    """A runner whose runs with a 10 ms edge-edge latency come out incomplete."""
    real = counting(calls)

    def runner(base, overrides, run_dir):
        real(base, overrides, run_dir)
        if ("topology.links[edge-edge].latency_ms", 10) in overrides:
            summary = json.loads((run_dir / "summary.json").read_text())
            summary.update(complete=False, incomplete_reason=REASON)
            (run_dir / "summary.json").write_text(json.dumps(summary))

    return runner


def test_incomplete_points_are_rows_rerun_on_resume_and_not_plotted(tmp_path, monkeypatch):
    path = write_sweep(tmp_path, {"topology.links[edge-edge].latency_ms": [1, 10, 20]})
    sweep = load_sweep(path)
    names = [p.name for p in sweep.points()]
    out = tmp_path / "out"
    calls: list[str] = []
    table = run_sweep(sweep, out, progress=False, runner=incomplete_when_slow(calls))
    assert calls == names  # the sweep went on past the incomplete point
    assert list(table["complete"]) == [True, False, True]
    assert list(table["incomplete_reason"]) == ["", REASON, ""]
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert results["complete"].dtype == bool and list(results["complete"]) == [True, False, True]
    assert results.loc[1, "incomplete_reason"] == REASON
    assert not is_complete(out / names[1])
    calls.clear()
    run_sweep(sweep, out, progress=False, runner=incomplete_when_slow(calls))
    assert calls == [names[1]]  # only the incomplete point runs again
    drawn: list[list[str]] = []

    def knob_figure(table, *args):
        drawn.append(list(table["run"]))
        return original(table, *args)

    original = simnet.report.plot.knob_figure
    monkeypatch.setattr(simnet.report.plot, "knob_figure", knob_figure)
    plot(out)
    assert drawn and all(runs == [names[0], names[2]] for runs in drawn)


def test_cli_reports_incomplete_points_and_exits_3(tmp_path, monkeypatch, capsys):
    path = write_sweep(tmp_path, {"topology.links[edge-edge].latency_ms": [1, 10]})
    calls: list[str] = []
    runner = incomplete_when_slow(calls)
    monkeypatch.setattr(simnet.sweeps, "run_sweep", functools.partial(run_sweep, runner=runner))
    out = tmp_path / "out"
    status = main(["sweep", str(path), "--out", str(out), "--workers", "1"])
    assert status == EXIT_INCOMPLETE == 3
    line = capsys.readouterr().out.strip().splitlines()[-1]
    name = load_sweep(path).points()[1].name
    assert line.startswith(f"2 runs in {out} (1 incomplete: {name}: {REASON}); table ")
    status = main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"])
    captured = capsys.readouterr()
    assert status == 3 and captured.out == ""
    assert captured.err == f"{out}: 1 incomplete: {name}: {REASON}\n"


def test_workers_do_not_change_any_file(tmp_path):
    path = write_tree_sweep(tmp_path, count=150, seeds=[0, 1, 2])
    one, two = tmp_path / "one", tmp_path / "two"
    run_sweep(load_sweep(path), one, workers=1, progress=False)
    run_sweep(load_sweep(path), two, workers=2, progress=False)
    for point in load_sweep(path).points():
        for name in ("messages.csv", "metrics.csv"):
            assert (one / point.name / name).read_bytes() == (two / point.name / name).read_bytes()
    assert (one / "results.csv").read_bytes() == (two / "results.csv").read_bytes()


def test_a_sweep_killed_and_resumed_writes_the_same_results(tmp_path):
    """SIGKILL a sweep process after some points finished, run it again to the end: its
    results.csv is byte-equal to that of an uninterrupted sweep."""
    path = write_tree_sweep(tmp_path, count=1000, seeds=list(range(5)))
    points = [p.name for p in load_sweep(path).points()]
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "simnet", "sweep", str(path), "--workers", "1",
               "--quiet", "--out", str(killed)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while True:
            done = [p for p in points if (killed / p / "summary.json").is_file()]
            if done or process.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        assert process.poll() is None, process.stderr.read().decode()
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    finished = [p for p in points if is_complete(killed / p)]
    assert 1 <= len(finished) < len(points)
    assert not (killed / "results.csv").exists()
    calls: list[str] = []
    run_sweep(load_sweep(path), killed, progress=False, runner=counting(calls))
    assert calls == [p for p in points if p not in finished]
    whole = tmp_path / "whole"
    run_sweep(load_sweep(path), whole, progress=False)
    assert (killed / "results.csv").read_bytes() == (whole / "results.csv").read_bytes()
    assert "wall_time_s" not in pd.read_csv(whole / "results.csv")
