"""Sweeps and plots: a bandwidth sweep on the dumbbell against the network equations,
resuming, link-class overrides, bad keys, figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from simnet.errors import InputError
from simnet.plot import plot
from simnet.records import is_complete
from simnet.sweep import load_sweep, run_sweep

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


def test_an_interrupted_sweep_resumes_without_rerunning(tmp_path):
    path = write_sweep(
        tmp_path, {"topology.links[edge-edge].latency_ms": [1, 10]}, zip={"seed": [0, 1]}
    )
    sweep = load_sweep(path)
    out = tmp_path / "out"
    calls: list[Path] = []

    def counting(base, overrides, run_dir):
        from simnet.run import run_scenario
        from simnet.scenario import load_scenario

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
        rows.append({"run": run.name, "workload.method": method, "transmitted_share": share,
                     "device_f1_macro.mean": 0.5 + i / 10})  # fmt: skip
    pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
    (out / "sweep.yaml").write_text(yaml.safe_dump({"grid": {"workload.method": []}, "zip": {}}))
    names = {p.name for p in plot(out)}
    assert {
        "knob_device_f1_macro_mean.png", "accuracy_vs_time.png", "transmitted_share.png",
        "latency_breakdown.png",
    } <= names  # fmt: skip
    assert all((out / "figures" / n).with_suffix(".pdf").is_file() for n in names)
