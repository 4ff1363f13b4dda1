"""Live mode: the same actors in several OS processes over ZeroMQ, in wall-clock time.

Tolerances here are generous (a noisy 2-core CI machine runs the processes and pytest);
``bench/live.py`` measures the tight figures."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from simnet.cli import main
from simnet.config.scenario import load_scenario
from simnet.live.launch import live_run
from simnet.live.links import Chunk, EmulatedLink, chunk_bytes
from simnet.runner import run_scenario

ROOT = Path(__file__).parents[1]
MB = 1_000_000

DUMBBELL = {
    "name": "live_dumbbell",
    "seed": 0,
    "topology": {
        "nodes": [{"id": n, "tier": t, "flops": 1e12} for n, t in
                  [("a0", "end"), ("a1", "end"), ("l", "edge"), ("r", "edge"), ("b0", "end"),
                   ("b1", "end")]],
        "links": [
            {"a": "a0", "b": "l", "latency_ms": 5, "bandwidth_mbps": 100},
            {"a": "a1", "b": "l", "latency_ms": 5, "bandwidth_mbps": 100},
            {"a": "l", "b": "r", "latency_ms": 20, "bandwidth_mbps": 16},
            {"a": "r", "b": "b0", "latency_ms": 5, "bandwidth_mbps": 100},
            {"a": "r", "b": "b1", "latency_ms": 5, "bandwidth_mbps": 100},
        ],
    },
    "workload": {
        "kind": "traffic",
        "transfers": [
            {"src": "a0", "dst": "b0", "bytes": 2 * MB, "at": 0.0},
            {"src": "a1", "dst": "b1", "bytes": 2 * MB, "at": 0.0},
            {"src": "b0", "dst": "a1", "bytes": 1 * MB, "at": 0.5},
            {"src": "a0", "dst": "b1", "bytes": 300_000, "at": 1.0},
        ],
    },
}  # fmt: skip


def write(tmp_path: Path, scenario: dict) -> Path:
    path = tmp_path / f"{scenario['name']}.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return path


def messages(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "messages.csv").set_index("id")


def test_a_live_traffic_run_across_two_processes_matches_the_simulation(tmp_path):
    path = write(tmp_path, DUMBBELL)
    sim = run_scenario(load_scenario(path), tmp_path / "sim", progress=False, figures=False)
    live = live_run(str(path), [], None, tmp_path / "live", processes=2, progress=False)
    assert live["complete"] and live["mode"] == "live" and live["processes"] == 2
    a, b = messages(tmp_path / "sim"), messages(tmp_path / "live")
    assert list(a.index) == list(b.index) == [0, 1, 2, 3]  # a transfer's index in both
    assert (b["status"] == "delivered").all()
    assert list(a["bytes"]) == list(b["bytes"]) and live["bytes_delivered"] == sim["bytes_total"]
    assert list(a["route"]) == list(b["route"])
    simulated = a["t_recv"] - a["t_send"]
    measured = b["t_recv"] - b["t_send"]
    error = (measured - simulated).abs() / simulated
    assert error.max() < 0.25, pd.DataFrame({"sim": simulated, "live": measured})
    # contention is emulated: the two 2 MB flows share the 16 Mbit/s link (~2 s), where one
    # alone would take half as long
    assert measured[0] > 1.6


def test_a_live_run_with_curve_keys_delivers_everything(tmp_path):
    scenario = {**DUMBBELL, "name": "live_curve"}
    scenario["workload"] = {"kind": "traffic", "transfers": DUMBBELL["workload"]["transfers"][3:]}
    path = write(tmp_path, scenario)
    live = live_run(str(path), [], None, tmp_path / "live", processes=2, curve=True,
                    progress=False)  # fmt: skip
    assert live["complete"] and live["curve"] and live["rejected_frames"] == 0
    assert sorted(p.name for p in (tmp_path / "live" / "keys").glob("*.key")) == [
        f"{n}.key" for n in sorted(["a0", "a1", "l", "r", "b0", "b1"])
    ]


def test_a_live_learning_run_completes_close_to_the_simulation(tmp_path):
    """mosei_async shortened to 3 merges and 4 inference requests per placement, one epoch
    and lighter raw samples over faster links: the cloud's scores are close to the
    simulated ones, every edge's entry comes from its own process, and every request
    (issued by ends in both processes) is answered."""
    sets = ["workload.cloud.updates=3", "workload.inference.requests=4",
            "workload.data.train=180", "workload.data.test=90", "workload.end.training.epochs=1",
            "workload.edge.adapter_training.epochs=1", "workload.end.raw_bytes_per_sample=750000",
            "network.bandwidth_factor=4"]  # fmt: skip
    path = str(ROOT / "scenarios" / "mosei_async.yaml")
    sim = run_scenario(load_scenario(path, sets), tmp_path / "sim", progress=False, figures=False)
    live = live_run(path, sets, None, tmp_path / "live", processes=2, progress=False)
    assert live["complete"] and live["updates_merged"] == 3
    assert live["cloud"]["version"] == sim["cloud"]["version"] == 3
    assert abs(live["cloud"]["acc2_non0"] - sim["cloud"]["acc2_non0"]) < 0.1
    assert abs(live["cloud"]["mae"] - sim["cloud"]["mae"]) < 0.15
    assert set(live["edges"]) == set(sim["edges"]) and all(live["edges"].values())
    assert set(live["personalisation"]) == set(sim["edges"])  # each from the edge's process
    assert all(e["global"] and e["personalised"] for e in live["personalisation"].values())
    assert live["edge_samples"] == sim["edge_samples"]
    for placement in ("edge", "cloud"):
        assert live["inference"][placement]["requests"] == 4
        assert live["inference"][placement]["failed"] == 0
    rows = pd.read_csv(tmp_path / "live" / "metrics.csv")
    assert sorted(rows[rows.metric == "version"].value) == [0, 1, 2, 3]
    kinds = pd.read_csv(tmp_path / "live" / "messages.csv")["kind"].value_counts()
    assert kinds["infer_result"] == 8 and kinds["infer_features"] == kinds["infer_raw"] == 4


def test_a_live_ml_ecs_round_gathers_every_device(tmp_path):
    path = str(ROOT / "scenarios" / "mlecs_mosei.yaml")
    sets = ["workload.rounds=1", "workload.model.steps=4", "workload.data.samples=300"]
    live = live_run(path, sets, None, tmp_path / "live", processes=2, progress=False)
    assert live["complete"] and live["server"]
    assert all(d["uploaded_rounds"] == 1 for d in live["devices"].values())
    assert live["parameters_by_kind"]["lora_update"] == sum(
        d["uploaded_parameters_per_round"] for d in live["devices"].values()
    )


def test_live_refuses_node_faults_in_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "simnet", "live", str(ROOT / "scenarios" / "faults_mosei.yaml"),
         "--out", str(tmp_path / "x")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "faults" in out.stderr


def run_links(plan):
    """Send ``plan`` = [(flow, size, route links)] at t = 0; arrival times (s) by flow."""

    async def main():
        loop = asyncio.get_running_loop()
        done = {flow: loop.create_future() for flow, _, _ in plan}
        t0 = loop.time()
        for flow, size, route in plan:
            c = chunk_bytes(route[0].bytes_per_s)
            pieces = [min(c, size - k) for k in range(0, size, c)]

            def forward(hop, length, last, flow=flow, route=route):
                def arrive(t):
                    if hop + 1 < len(route):
                        route[hop + 1].put(Chunk(flow, length, t, forward(hop + 1, length, last)))
                    elif last:
                        done[flow].set_result(t - t0)

                return arrive

            for i, length in enumerate(pieces):
                route[0].put(Chunk(flow, length, t0, forward(0, length, i == len(pieces) - 1)))
        return {flow: await future for flow, future in done.items()}

    return asyncio.run(main())


def test_a_lone_message_crosses_its_links_in_the_analytic_time():
    """Σ latency + S / C_min + (H − 1) · c / C_min: 2 MB over 8 MB/s then 2 MB/s links."""
    fast, slow = EmulatedLink(0.010, 8 * MB), EmulatedLink(0.020, 2 * MB)
    got = run_links([(1, 2 * MB, [fast, slow])])[1]
    c = chunk_bytes(8 * MB)
    expected = 0.030 + 2 * MB / (2 * MB) + c / (8 * MB)
    assert got == pytest.approx(expected, abs=1e-3)


def test_flows_on_one_link_share_it_equally():
    """Two 1 MB flows on a 4 MB/s link both end at 2 · 1 MB / 4 MB/s = 0.5 s."""
    link = EmulatedLink(0.0, 4 * MB)
    got = run_links([(1, MB, [link]), (2, MB, [link])])
    assert np.allclose([got[1], got[2]], 0.5, atol=2e-3)
    assert abs(got[1] - got[2]) <= chunk_bytes(4 * MB) / (4 * MB) + 1e-9


def test_a_link_that_goes_down_drops_its_flows():
    dropped = []

    async def main():
        link = EmulatedLink(0.0, MB, dropped.append)
        link.put(Chunk(7, 1000, 0.0, lambda t: None))
        link.set_up(False)
        link.put(Chunk(8, 1000, 0.0, lambda t: None))
        link.close()

    asyncio.run(main())
    assert dropped == [7, 8]


def test_a_live_run_stopped_by_its_time_limit_is_incomplete(tmp_path, capsys):
    path = write(tmp_path, DUMBBELL)
    code = main(["live", str(path), "--out", str(tmp_path / "live"), "--processes", "2",
                 "--time-limit", "0.5", "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 3, err
    assert "time limit of 0.5 s" in err
    summary = json.loads((tmp_path / "live" / "summary.json").read_text())
    assert summary["complete"] is False and summary["messages"]["in_flight"] >= 2


def test_without_shaping_messages_go_straight_to_the_receiver(tmp_path):
    scenario = {**DUMBBELL, "name": "live_unshaped"}
    path = write(tmp_path, scenario)
    live = live_run(str(path), [], None, tmp_path / "live", processes=2, shaping="none",
                    progress=False)  # fmt: skip
    assert live["complete"] and live["shaping"] == "none"
    rows = messages(tmp_path / "live")
    assert (rows["status"] == "delivered").all()
    # loopback, not a 16 Mbit/s link: 2 MB in well under the emulated second
    assert (rows["t_recv"] - rows["t_send"]).max() < 0.5
