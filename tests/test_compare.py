"""``simnet compare``: joining a simulated and a live run, errors per size class, round
times, final metrics, files written and CLI behaviour."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from simnet.cli import main
from simnet.config.scenario import load_scenario
from simnet.errors import InputError
from simnet.report.compare import compare_runs, format_comparison, size_class
from simnet.runner import run_scenario

ROOT = Path(__file__).parents[1]
COLUMNS = ["src", "dst", "kind", "bytes", "size_class", "sim_s", "live_s", "rel_error"]
# bytes -> factor applied to the transfer time in the "live" copy
TRANSFERS = [
    ("left0", "right0", "data", 5_000_000, 0.0, 1.10),
    ("left1", "right1", "data", 2_000_000, 0.0, 1.10),
    ("right0", "left1", "ack", 5_000, 0.5, 0.80),
    ("right1", "left0", "ack", 5_000, 0.6, 1.50),
    ("left0", "right1", "data", 100_000, 1.0, 1.00),
    ("left1", "right0", "data", 200_000, 1.2, 1.20),
]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A traffic run over the dumbbell with transfers of every size class."""
    base = tmp_path_factory.mktemp("sim")
    scenario = {
        "name": "compare_mix",
        "seed": 0,
        "topology": str(ROOT / "topologies" / "dumbbell.yaml"),
        "workload": {
            "kind": "traffic",
            "transfers": [
                {"src": s, "dst": d, "kind": k, "bytes": b, "at": at}
                for s, d, k, b, at, _ in TRANSFERS
            ],
        },
    }
    path = base / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario))
    out = base / "run"
    run_scenario(load_scenario(path, [], None), out, progress=False, figures=False)
    return out


def make_live(sim: Path, live: Path) -> Path:
    """A copy of ``sim`` whose transfer times are scaled by the factors of TRANSFERS."""
    shutil.copytree(sim, live)
    rows = read_rows(live / "messages.csv")
    for row in rows:
        factor = TRANSFERS[int(row["id"])][-1]
        t_send = float(row["t_send"])
        row["t_recv"] = repr(t_send + factor * (float(row["t_recv"]) - t_send))
    write_rows(live / "messages.csv", rows)
    summary = json.loads((live / "summary.json").read_text())
    summary["mode"] = "live"
    summary["virtual_time_s"] *= 1.5
    (live / "summary.json").write_text(json.dumps(summary))
    return live


def test_size_classes():
    assert [size_class(b) for b in (0, 9_999, 10_000, 999_999, 1_000_000, 10**9)] == [
        "<10 kB", "<10 kB", "10 kB–1 MB", "10 kB–1 MB", "≥1 MB", "≥1 MB",
    ]  # fmt: skip


def test_errors_per_size_class(sim_run, tmp_path):
    live = make_live(sim_run, tmp_path / "live")
    c = compare_runs(sim_run, live, tmp_path / "out")
    assert c.counts == {"compared": 6, "sim_only": 0, "live_only": 0,
                        "sim_undelivered": 0, "live_undelivered": 0}  # fmt: skip
    stats = c.by_class.set_index(["size_class", "kind"])
    big = stats.loc[("≥1 MB", "data")]
    assert big["n"] == 2
    assert big["median_abs_rel_error"] == pytest.approx(0.10)
    assert big["p95_abs_rel_error"] == pytest.approx(0.10)
    small = stats.loc[("<10 kB", "ack")]  # |errors| 0.2 and 0.5
    assert small["n"] == 2
    assert small["median_abs_rel_error"] == pytest.approx(0.35)
    assert small["p95_abs_rel_error"] == pytest.approx(0.2 + 0.95 * 0.3)
    mid = stats.loc[("10 kB–1 MB", "data")]  # |errors| 0 and 0.2
    assert (mid["n"], mid["median_abs_rel_error"]) == (2, pytest.approx(0.1))
    assert mid["p95_abs_rel_error"] == pytest.approx(0.19)
    assert mid["median_live_s"] > mid["median_sim_s"]
    assert list(stats.index) == [("<10 kB", "ack"), ("10 kB–1 MB", "data"),
                                 ("≥1 MB", "data"), ("all", "all")]  # fmt: skip
    assert stats.loc[("all", "all"), "n"] == 6
    signed = c.messages.set_index("id")["rel_error"]
    assert signed["2"] == pytest.approx(-0.2)
    assert signed["3"] == pytest.approx(0.5)

    finals = c.finals.set_index("metric")
    assert finals.loc["virtual_time_s", "rel_error"] == pytest.approx(0.5)
    assert "complete" not in finals.index  # booleans are not metrics
    assert c.rounds.empty and c.round_node is None

    rows = read_rows(tmp_path / "out" / "compare.csv")
    assert list(rows[0]) == ["id", *COLUMNS]
    assert len(rows) == 6
    assert float(rows[0]["rel_error"]) == pytest.approx(0.10)
    assert (tmp_path / "out" / "compare.png").stat().st_size > 0

    text = format_comparison(c)
    assert "messages: 6 compared; unmatched: 0 sim, 0 live; undelivered: 0 sim, 0 live" in text
    line = next(x for x in text.splitlines() if x.startswith("≥1 MB"))
    assert line.split()[2:5] == ["data", "2", "10.0%"]
    assert "virtual_time_s" in text


def test_unmatched_and_undelivered_are_counted(sim_run, tmp_path):
    live = make_live(sim_run, tmp_path / "live")
    rows = read_rows(live / "messages.csv")
    rows[4].update(status="dropped", t_recv="", t_drop="1.5")
    write_rows(live / "messages.csv", [r for r in rows if r["id"] != "0"])
    c = compare_runs(sim_run, live, tmp_path / "out")
    assert c.counts == {"compared": 4, "sim_only": 1, "live_only": 0,
                        "sim_undelivered": 0, "live_undelivered": 1}  # fmt: skip
    assert sorted(c.messages["id"]) == ["1", "2", "3", "5"]
    rows = read_rows(tmp_path / "out" / "compare.csv")
    assert [(r["id"], r["bytes"]) for r in rows] == [
        ("1", "2000000"), ("2", "5000"), ("3", "5000"), ("5", "200000"),
    ]  # fmt: skip


def learning_run(
    path: Path, messages: list[tuple[str, str, str, int, float, float]], versions: list[float]
) -> Path:
    """A hand-written federated run directory: messages ``(id, src, dst, bytes, t_send,
    t_recv)`` of kind given by the id's prefix, the cloud's version ``i`` at
    ``versions[i]``."""
    path.mkdir()
    rows = [
        {"id": i, "src": s, "dst": d, "kind": k, "bytes": b, "t_send": ts, "t_recv": tr,
         "status": "delivered", "t_drop": "", "route": f"{s}>{d}", "phase": "training",
         "carried": b}
        for i, s, d, k, b, ts, tr in messages
    ]  # fmt: skip
    write_rows(path / "messages.csv", rows)
    metrics = [{"t": 0.0, "node": "edge0", "metric": "version", "value": 0}]
    metrics += [{"t": t, "node": "cloud0", "metric": "version", "value": v}
                for v, t in enumerate(versions)]  # fmt: skip
    write_rows(path / "metrics.csv", metrics)
    topology = {"nodes": [{"id": "cloud0", "tier": "cloud"}, {"id": "edge0", "tier": "edge"}]}
    (path / "scenario.yaml").write_text(yaml.safe_dump({"topology": topology}))
    summary = {"name": "fed", "workload": "federated", "complete": True, "virtual_time_s":
               versions[-1], "cloud": {"version": len(versions) - 1, "acc2_non0": 0.6}}  # fmt: skip
    (path / "summary.json").write_text(json.dumps(summary))
    return path


def test_join_on_src_dst_kind_and_order(tmp_path):
    sim = learning_run(
        tmp_path / "sim",
        [(0, "edge0", "cloud0", "model", 2_000_000, 1.0, 3.0),
         (1, "cloud0", "edge0", "model", 2_000_000, 3.0, 4.0),
         (2, "edge0", "cloud0", "model", 2_000_000, 5.0, 7.0),
         (3, "edge0", "cloud0", "stats", 500, 5.0, 5.5)],
        [0.0, 10.0, 20.0, 30.0],
    )  # fmt: skip
    # other ids and another file order; the k-th (src, dst, kind) by t_send still pairs up
    live = learning_run(
        tmp_path / "live",
        [(7, "edge0", "cloud0", "stats", 500, 6.0, 6.6),
         (8, "edge0", "cloud0", "model", 2_000_000, 6.0, 9.0),
         (9, "edge0", "cloud0", "model", 2_000_000, 1.0, 3.2),
         (10, "cloud0", "edge0", "model", 2_000_000, 3.2, 4.4),
         (11, "cloud0", "edge0", "model", 2_000_000, 9.0, 10.0)],
        [0.0, 12.0, 23.0, 35.0, 40.0],
    )  # fmt: skip
    c = compare_runs(sim, live, tmp_path / "out")
    assert c.join == ["src", "dst", "kind", "k"]
    assert c.counts["compared"] == 4 and c.counts["live_only"] == 1
    got = {(r.src, r.kind, r.k): r.rel_error for r in c.messages.itertuples()}
    assert got == {
        ("edge0", "model", 0): pytest.approx(0.1),
        ("cloud0", "model", 0): pytest.approx(0.2),
        ("edge0", "model", 1): pytest.approx(0.5),
        ("edge0", "stats", 0): pytest.approx(0.2),
    }
    assert list(read_rows(tmp_path / "out" / "compare.csv")[0]) == ["k", *COLUMNS]

    assert c.round_node == "cloud0"  # the cloud tier, not edge0
    rounds = c.rounds.set_index("version")
    assert list(rounds.index) == [0, 1, 2, 3]
    assert list(rounds["live_interval_s"].iloc[1:]) == [12.0, 11.0, 12.0]
    assert list(rounds["rel_error"].iloc[1:]) == pytest.approx([0.2, 0.1, 0.2])
    finals = c.finals.set_index("metric")
    assert finals.loc["cloud.version", ["sim", "live"]].tolist() == [3.0, 4.0]
    assert finals.loc["cloud.acc2_non0", "rel_error"] == pytest.approx(0.0)

    text = format_comparison(c)
    assert "round times (s): version rows of cloud0" in text
    assert "interval |err|: median 20.0%, p95 20.0%" in text


def test_bad_inputs(sim_run, tmp_path):
    live = make_live(sim_run, tmp_path / "live")
    summary = json.loads((live / "summary.json").read_text())
    (live / "summary.json").write_text(json.dumps({**summary, "name": "other"}))
    with pytest.raises(InputError, match="summary.json: name: 'other' differs"):
        compare_runs(sim_run, live, tmp_path / "out")
    (live / "summary.json").write_text(json.dumps(summary))
    rows = read_rows(live / "messages.csv")
    for row in rows:
        row["id"] = str(int(row["id"]) + 100)
    write_rows(live / "messages.csv", rows)
    with pytest.raises(InputError, match="messages.csv: no message delivered in both"):
        compare_runs(sim_run, live, tmp_path / "out")


def test_cli(sim_run, tmp_path, capsys):
    live = make_live(sim_run, tmp_path / "live")
    assert main(["compare", str(sim_run), str(live)]) == 0
    out = capsys.readouterr().out
    assert "transfer time (s) per size class and kind" in out
    assert (live / "compare.csv").is_file() and (live / "compare.png").is_file()

    bad = tmp_path / "empty"
    bad.mkdir()
    assert main(["compare", str(sim_run), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {bad / 'summary.json'}: missing or not a JSON object\n"
    (bad / "summary.json").write_text(json.dumps({"name": "compare_mix", "workload": "traffic"}))
    assert main(["compare", str(sim_run), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {bad / 'messages.csv'}: missing: not a run directory\n"
