"""Running scenarios end to end: run directory contents, determinism, overrides."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from simnet.cli import main
from simnet.report.records import is_complete

ROOT = Path(__file__).parents[1]
DUMBBELL = ROOT / "scenarios" / "traffic_dumbbell.yaml"
TREE = ROOT / "scenarios" / "traffic_tree.yaml"


def run(tmp_path: Path, scenario: Path, *extra: str, name: str = "run") -> Path:
    out = tmp_path / name
    assert main(["run", str(scenario), "--out", str(out), "--quiet", *extra]) == 0
    return out


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_dumbbell_matches_hand_computed_times(tmp_path):
    # Bottleneck 10 Mbit/s = 1.25 MB/s, route latency 2 + 20 + 2 ms = 24 ms.
    out = run(tmp_path, DUMBBELL)
    msgs = rows(out / "messages.csv")
    assert list(msgs[0]) == [
        "id", "src", "dst", "kind", "bytes", "t_send", "t_recv", "status", "t_drop", "route",
        "phase", "carried",
    ]  # fmt: skip
    got = {int(m["id"]): m for m in msgs}
    # two 5 MB flows share the bottleneck: 0.625 MB/s each -> 8 s
    assert float(got[0]["t_recv"]) == pytest.approx(0.024 + 8.0)
    assert float(got[1]["t_recv"]) == pytest.approx(0.024 + 8.0)
    # the reverse direction is free: 2 MB at 1.25 MB/s
    assert float(got[2]["t_recv"]) == pytest.approx(1.0 + 0.024 + 1.6)
    # sent at 8.5 s, would end at 9.324 s, but the bottleneck fails at 9 s
    assert (got[3]["status"], float(got[3]["t_drop"]), got[3]["t_recv"]) == ("dropped", 9.0, "")
    assert float(got[4]["t_recv"]) == pytest.approx(10.0 + 0.024 + 0.8)
    assert got[0]["route"] == "left0>edgeL>edgeR>right0"

    summary = json.loads((out / "summary.json").read_text())
    assert summary["bytes_total"] == sum(int(m["bytes"]) for m in msgs) == 14_000_000
    assert summary["bytes_dropped"] == 1_000_000
    assert summary["messages"] == {"delivered": 4, "dropped": 1, "in_flight": 0}
    assert summary["virtual_time_s"] == pytest.approx(10.824)
    assert summary["bytes_by_kind"]["ack"]["delivered"] == 2_000_000
    metrics = rows(out / "metrics.csv")
    assert [float(m["value"]) for m in metrics if m["node"] == "right1"] == [pytest.approx(8.024)]


def test_run_directory_is_complete_and_self_contained(tmp_path):
    out = run(tmp_path, DUMBBELL)
    assert sorted(p.name for p in out.iterdir()) == [
        "figures", "messages.csv", "metrics.csv", "scenario.yaml", "summary.json"
    ]  # fmt: skip
    assert sorted(p.name for p in (out / "figures").iterdir()) == [
        "bytes_per_kind.png", "bytes_per_tier.png"
    ]  # fmt: skip
    assert is_complete(out)
    as_run = yaml.safe_load((out / "scenario.yaml").read_text())
    assert as_run["network"]["bandwidth_factor"] == 1.0  # default filled
    assert len(as_run["topology"]["nodes"]) == 6  # topology inlined
    # the scenario as run runs again, from anywhere, to the same messages
    copy = tmp_path / "elsewhere" / "again.yaml"
    copy.parent.mkdir()
    copy.write_text((out / "scenario.yaml").read_text())
    again = run(tmp_path, copy, name="again")
    assert (again / "messages.csv").read_bytes() == (out / "messages.csv").read_bytes()


@pytest.mark.parametrize("scenario", [DUMBBELL, TREE], ids=["explicit", "generated"])
def test_same_scenario_and_seed_give_identical_files(tmp_path, scenario):
    first = run(tmp_path, scenario, name="a")
    second = run(tmp_path, scenario, name="b")
    for name in ("messages.csv", "metrics.csv"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_seed_changes_generated_traffic(tmp_path):
    a = run(tmp_path, TREE, "--set", "workload.generate.count=20", name="a")
    b = run(tmp_path, TREE, "--set", "workload.generate.count=20", "--seed", "1", name="b")
    assert (a / "messages.csv").read_bytes() != (b / "messages.csv").read_bytes()
    assert json.loads((b / "summary.json").read_text())["seed"] == 1


def test_generated_traffic_follows_the_generator(tmp_path):
    out = run(tmp_path, TREE, "--set", "workload.generate.count=50", name="g")
    msgs = rows(out / "messages.csv")
    assert len(msgs) == 50
    assert {m["dst"] for m in msgs} == {"cloud0"}
    assert {m["src"] for m in msgs} == {f"end{i}" for i in range(8)}
    sizes = [int(m["bytes"]) for m in msgs]
    assert min(sizes) >= 1_000_000 and max(sizes) <= 5_000_000
    sends = [float(m["t_send"]) for m in msgs]
    assert sends == sorted(sends)
    # mean inter-arrival of a 2/s Poisson process is 0.5 s (loose: 50 draws)
    assert 0.3 < sends[-1] / len(sends) < 0.8


def test_set_override_changes_bandwidth_as_the_model_predicts(tmp_path):
    out = run(tmp_path, DUMBBELL, "--set", "network.bandwidth_factor=0.5")
    got = {int(m["id"]): m for m in rows(out / "messages.csv")}
    # half the capacity: the reverse 2 MB transfer takes 3.2 s instead of 1.6 s
    assert float(got[2]["t_recv"]) == pytest.approx(1.0 + 0.024 + 3.2)


def test_existing_run_directory_is_not_overwritten(tmp_path, capsys):
    out = run(tmp_path, DUMBBELL)
    before = (out / "summary.json").read_text()
    assert main(["run", str(DUMBBELL), "--out", str(out), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == before
    assert main(["run", str(DUMBBELL), "--out", str(out), "--quiet", "--force"]) == 0


def test_until_stops_early_and_leaves_messages_in_flight(tmp_path):
    out = run(tmp_path, DUMBBELL, "--set", "workload.until=5")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["virtual_time_s"] == 5.0
    assert summary["messages"]["in_flight"] == 2
    statuses = [m["status"] for m in rows(out / "messages.csv")]
    assert statuses == ["in_flight", "in_flight", "delivered"]


def test_validate_and_summary_table(tmp_path, capsys):
    assert main(["validate", str(TREE)]) == 0
    assert "11 nodes" in capsys.readouterr().out
    out = tmp_path / "r"
    assert main(["run", str(DUMBBELL), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "virtual time" in table and "14,000,000 B" in table
