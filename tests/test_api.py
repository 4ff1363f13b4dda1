"""The library API: results as frames equal to the files, the same files as the CLI,
mappings as scenarios and overrides, the CLI's one-line errors as InputError."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import simnet
from simnet.cli import main

ROOT = Path(__file__).parents[1]
DUMBBELL = ROOT / "scenarios" / "traffic_dumbbell.yaml"


def test_run_returns_frames_holding_exactly_the_csv_rows(tmp_path):
    result = simnet.run(DUMBBELL, out=tmp_path / "run", progress=False)
    assert isinstance(result, simnet.Result) and result.complete
    with open(tmp_path / "run" / "messages.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(result.messages) == len(rows) > 0
    assert result.messages["id"].dtype == "int64" and result.messages["bytes"].dtype == "int64"
    for row, (_, frame) in zip(rows, result.messages.iterrows(), strict=True):
        assert frame["t_send"] == float(row["t_send"])  # bit-exact
        if row["t_recv"]:
            assert frame["t_recv"] == float(row["t_recv"])
        else:
            assert math.isnan(frame["t_recv"])
        assert frame["src"] == row["src"] and frame["route"] == row["route"]
    assert result.summary == json.loads((tmp_path / "run" / "summary.json").read_text())
    again = simnet.load_run(tmp_path / "run")
    assert again.messages.equals(result.messages) and again.metrics.equals(result.metrics)
    assert result.scenario == yaml.safe_load((tmp_path / "run" / "scenario.yaml").read_text())


def test_api_and_cli_write_byte_identical_files(tmp_path):
    sets = {"workload.cloud.updates": 2, "workload.inference": None}
    api = simnet.run(ROOT / "scenarios" / "mosei_async.yaml", sets, out=tmp_path / "api",
                     progress=False, figures=False)  # fmt: skip
    cli = tmp_path / "cli"
    cmd = [sys.executable, "-m", "simnet", "run", "scenarios/mosei_async.yaml", "--out", str(cli),
           "--set", "workload.cloud.updates=2", "--set", "workload.inference=null", "--quiet",
           "--no-figures"]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    for name in ("messages.csv", "metrics.csv", "scenario.yaml"):
        assert (cli / name).read_bytes() == (api.run_dir / name).read_bytes(), name
    wall = lambda s: {k: v for k, v in s.items() if not k.startswith("wall_")}  # noqa: E731
    assert wall(json.loads((cli / "summary.json").read_text())) == wall(api.summary)


def test_a_mapping_scenario_resolves_paths_against_base_dir(tmp_path):
    data = yaml.safe_load(DUMBBELL.read_text())
    data.pop("name", None)
    as_file = simnet.run(DUMBBELL, {"seed": 3}, out=tmp_path / "file", progress=False)
    as_dict = simnet.run(data, {"seed": 3}, out=tmp_path / "dict", progress=False,
                         base_dir=DUMBBELL.parent)  # fmt: skip
    assert as_dict.messages.equals(as_file.messages)
    assert as_dict.summary["name"] == "scenario"
    rerun = simnet.run(as_file.scenario, out=tmp_path / "rerun", progress=False)
    assert rerun.messages.equals(as_file.messages)  # the scenario as run runs again
    loaded = simnet.load(DUMBBELL)
    assert simnet.run(loaded, out=tmp_path / "obj", progress=False).messages.equals(
        simnet.run(DUMBBELL, out=tmp_path / "path", progress=False).messages
    )


def test_mapping_overrides_mean_what_set_means():
    path = ROOT / "scenarios" / "mosei_async.yaml"
    python = simnet.load(path, {"workload.cloud.updates": 3, "workload.inference": None,
                                "topology.links[edge-cloud].bandwidth_mbps": 5})  # fmt: skip
    text = simnet.load(path, ["workload.cloud.updates=3", "workload.inference=null",
                              "topology.links[edge-cloud].bandwidth_mbps=5"])  # fmt: skip
    assert python.as_run() == text.as_run()
    assert python.workload.inference is None and python.workload.cloud.updates == 3


def test_a_user_mistake_raises_the_line_the_cli_prints(tmp_path, capsys):
    bad = {"workload.transfers.0.dst": "edge9"}
    with pytest.raises(simnet.InputError) as raised:
        simnet.run(DUMBBELL, bad, out=tmp_path / "x", progress=False)
    assert main(["run", str(DUMBBELL), "--set", "workload.transfers.0.dst=edge9",
                 "--out", str(tmp_path / "y")]) == 2  # fmt: skip
    assert capsys.readouterr().err == f"error: {raised.value}\n"
    assert "workload.transfers.0.dst" in str(raised.value)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simnet", *args], capture_output=True,
                          text=True, cwd=ROOT)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["live", str(DUMBBELL), "--keys", "somewhere"], "--keys: only with --curve"),
        (["live", str(DUMBBELL), "--time-limit", "-5"], "--time-limit: must be > 0 seconds"),
        (
            ["run", str(DUMBBELL), "--set", "topology.links[edge-cloud].bandwidth_mbps=[1,"],
            "--set: topology.links[edge-cloud].bandwidth_mbps: invalid value",
        ),
    ],
)
def test_cli_hygiene_one_line_exit_2(args, says):
    out = cli(*args)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr and says in out.stderr


def test_out_pointing_at_a_file_is_one_line_exit_2(tmp_path):
    target = tmp_path / "afile"
    target.write_text("x")
    out = cli("run", str(DUMBBELL), "--out", str(target))
    assert (
        out.returncode == 2
        and out.stderr == f"error: {target}: is a file, not a directory; choose a directory\n"
    )
    assert target.read_text() == "x"


def test_sweep_result_is_results_csv_and_its_points(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"base": str(DUMBBELL), "grid": {"seed": [0, 1]}}))
    result = simnet.sweep(sweep, workers=1, out=tmp_path / "out", progress=False)
    assert result.results.equals(pd.read_csv(tmp_path / "out" / "results.csv"))
    points = result.points
    assert list(points) == list(result.results["run"]) and len(points) == 2
    assert all(p.complete for p in points.values())
    assert simnet.load_sweep(tmp_path / "out").results.equals(result.results)
