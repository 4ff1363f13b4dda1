"""The launcher's bookkeeping: a drop at the very start, a host process that dies, and
paths in the merged ``scenario.yaml``."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
from multiprocessing.process import BaseProcess
from typing import Any

import pytest
import yaml
from test_live import DUMBBELL, MB, messages, write

import simnet.live.launch as launch
from simnet.cli import main
from simnet.config.scenario import Scenario, load_scenario
from simnet.live.control import Stop
from simnet.live.merge import PART_FORMAT, write_live_run


def _part(scenario: Scenario, result: dict[str, Any], nodes: list[str]) -> dict[str, Any]:
    """A one-launcher part of ``scenario``, one process holding ``nodes``."""
    return {
        "format": PART_FORMAT, "scenario": scenario.as_run(),
        "relative": sorted(scenario.origin.made_absolute), "hosts": None, "started_at": None,
        "nodes": nodes, "shaping": "app", "curve": False, "stopped": None, "wall_time_s": 0.1,
        "rejected_control": {}, "processes": [{"index": 0, "nodes": nodes, "result": result}],
    }  # fmt: skip


def test_a_merged_live_run_writes_the_paths_given_relative_relative_to_itself(tmp_path):
    """A fault trace named relative to the scenario file is written relative to the run
    directory, so the run's ``scenario.yaml`` loads where it lies, and moved with it."""
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "down.csv").write_text("node,t_down,t_up\na1,50,51\n")
    scenario = load_scenario(write(tmp_path, {**DUMBBELL, "faults": {"trace": "traces/down.csv"}}))
    result: dict[str, Any] = {
        "progress": 0, "planned": 0, "received": 0, "dropped": [], "finished": True,
        "finished_at": 0.0, "ended": [], "sent": [], "received_at": {}, "dropped_at": {},
        "metrics": [], "faults": {}, "rejected": {}, "busy_s": {}, "overrun_s": {},
        "waiting": [], "part": {}, "main": True,
    }  # fmt: skip
    nodes = [node["id"] for node in DUMBBELL["topology"]["nodes"]]
    write_live_run([_part(scenario, result, nodes)], tmp_path / "runs" / "live")
    stored = yaml.safe_load((tmp_path / "runs" / "live" / "scenario.yaml").read_text())
    assert stored["faults"]["trace"] == "../../traces/down.csv"
    shutil.move(tmp_path, tmp_path.parent / "moved")
    run_dir = tmp_path.parent / "moved" / "runs" / "live"
    assert load_scenario(run_dir / "scenario.yaml").as_run(run_dir) == stored


def test_a_part_whose_relative_paths_are_not_a_list_of_paths_is_refused(tmp_path, capsys):
    scenario = load_scenario(write(tmp_path, DUMBBELL))
    nodes = [node["id"] for node in DUMBBELL["topology"]["nodes"]]
    part = {**_part(scenario, {}, nodes), "relative": 7}
    (tmp_path / "east").mkdir()
    (tmp_path / "east" / "part.json").write_text(json.dumps(part))
    assert main(["live", "merge", str(tmp_path / "east"), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "part.json" in err and "relative" in err
    assert not (tmp_path / "m" / "summary.json").exists()


def test_a_message_dropped_at_time_zero_is_dropped_not_in_flight(tmp_path):
    """A drop at exactly 0.0 s (a link down from the start) is a drop like any other."""
    scenario = load_scenario(write(tmp_path, DUMBBELL))
    row = {"id": 0, "src": "a0", "dst": "b0", "kind": "data", "size": 2 * MB, "t_send": 0.0,
           "path": ["a0", "l", "r", "b0"], "phase": "traffic"}  # fmt: skip
    result: dict[str, Any] = {
        "progress": 0, "planned": 1, "received": 0, "dropped": [0], "finished": False,
        "finished_at": None, "ended": [], "sent": [row], "received_at": {},
        "dropped_at": {0: 0.0}, "metrics": [], "faults": {}, "rejected": {}, "busy_s": {},
        "overrun_s": {}, "waiting": [], "part": {}, "main": True,
    }  # fmt: skip
    part = _part(scenario, result, ["a0", "l", "r", "b0"])
    summary = write_live_run([part], tmp_path / "live")
    rows = messages(tmp_path / "live")
    assert rows.loc[0, "status"] == "dropped" and rows.loc[0, "t_drop"] == 0.0
    assert summary["messages"] == {"delivered": 0, "dropped": 1, "in_flight": 0}
    assert summary["bytes_in_flight"] == 0
    assert json.loads((tmp_path / "live" / "summary.json").read_text()) == summary


@pytest.mark.parametrize("then_stop", [False, True], ids=["while watching", "at the stop"])
def test_a_host_process_killed_mid_run_ends_the_run_in_one_line_naming_it(
    tmp_path, capfd, monkeypatch, then_stop
):
    """One host process is killed once the run has started; the launcher then reads its
    progress (or, told the run is done, sends it the stop): one line names the process
    and its nodes, exit status 1, no traceback."""
    killed: list[BaseProcess] = []
    verdict = launch._verdict

    def kill_one(*args: Any) -> Stop | None:
        if not killed:
            victim = multiprocessing.active_children()[0]
            os.kill(victim.pid, signal.SIGKILL)
            victim.join(10)  # its pipe is closed before the launcher looks again
            killed.append(victim)
            if then_stop:
                return Stop(None)
        return verdict(*args)

    monkeypatch.setattr(launch, "_verdict", kill_one)
    path = write(tmp_path, DUMBBELL)
    code = main(["live", str(path), "--out", str(tmp_path / "live"), "--processes", "2",
                 "--quiet"])  # fmt: skip
    err = capfd.readouterr().err
    (victim,) = killed
    assert code == 1 and err.splitlines() == [
        f"error: live run failed: {victim.name} ended without a word (exit code -9)"
    ], err
    assert victim.name in {"process 0 (a0, l, b0)", "process 1 (a1, r, b1)"}
    assert not (tmp_path / "live" / "summary.json").exists()
