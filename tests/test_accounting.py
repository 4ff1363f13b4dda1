"""Every byte figure of summary.json, recomputed from messages.csv and its route column —
for a run with a drop, a run stopped with flows in flight, and a learning run with a
training and an inference phase — and the figures' data against the same numbers."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import pytest
import yaml

from simnet.config.scenario import load_scenario
from simnet.report.figures import cumulative_bytes_by_class, read_messages
from simnet.report.table import format_summary
from simnet.runner import run_scenario
from simnet.topology.graph import link_class

ROOT = Path(__file__).resolve().parents[1]
DUMBBELL = ROOT / "scenarios" / "traffic_dumbbell.yaml"
BOTTLENECK = 10e6 / 8  # bytes/s of the dumbbell's edgeL–edgeR link


def run(path: Path, out: Path, *sets: str) -> dict:
    return run_scenario(load_scenario(path, list(sets)), out, progress=False, figures=False)


def recomputed(out: Path) -> dict:
    """The byte figures of a summary, from messages.csv alone (plus the topology's tiers)."""
    messages = read_messages(out)
    topo = yaml.safe_load((out / "scenario.yaml").read_text())["topology"]
    tiers = {n["id"]: n["tier"] for n in topo["nodes"]}
    status = Counter()
    by_phase: Counter = Counter()
    by_kind: dict[str, Counter] = defaultdict(Counter)
    by_class: dict[str, Counter] = defaultdict(Counter)
    link: Counter = Counter()
    link_phase: dict[str, Counter] = defaultdict(Counter)
    for m in messages.itertuples(index=False):
        route = m.route.split(">")
        classes = [
            link_class(tiers[a], tiers[b]) for a, b in zip(route[:-1], route[1:], strict=True)
        ]
        status[m.status] += m.bytes
        by_phase[m.phase] += m.bytes
        for counter in [by_kind[m.kind], *(by_class[c] for c in set(classes))]:
            counter["sent"] += m.bytes
            counter[m.status] += m.bytes
        for c in classes:
            link[c] += m.carried
            link_phase[m.phase][c] += m.carried
    return {
        "bytes_total": int(messages["bytes"].sum()),
        "bytes_delivered": status["delivered"],
        "bytes_dropped": status["dropped"],
        "bytes_in_flight": status["in_flight"],
        "bytes_by_phase": dict(by_phase),
        "bytes_by_kind": {k: dict(v) for k, v in by_kind.items()},
        "message_bytes_by_link_class": {k: dict(v) for k, v in by_class.items()},
        "bytes_by_tier": dict(link),
        "bytes_by_tier_by_phase": {p: dict(v) for p, v in link_phase.items()},
        "link_bytes_total": sum(link.values()),
        "messages": dict(Counter(messages["status"])),
    }


def check_summary_against_messages(summary: dict, out: Path) -> None:
    again = recomputed(out)
    for key in ("bytes_total", "bytes_delivered", "bytes_dropped", "bytes_in_flight",
                "bytes_by_phase", "bytes_by_tier", "bytes_by_tier_by_phase",
                "link_bytes_total"):  # fmt: skip
        assert summary[key] == again[key], key
    assert summary["bytes_total"] == sum(summary["bytes_by_phase"].values())
    assert summary["bytes_total"] == (
        summary["bytes_delivered"] + summary["bytes_dropped"] + summary["bytes_in_flight"]
    )
    for key in ("bytes_by_kind", "message_bytes_by_link_class"):
        for name, counts in summary[key].items():
            want = again[key][name]
            assert counts == {s: want.get(s, 0) for s in counts}, (key, name)
            assert counts["sent"] == counts["delivered"] + counts["dropped"] + counts["in_flight"]
    assert {k: v for k, v in summary["messages"].items() if v} == again["messages"]
    # the figure's data ends where the summary does
    t_end = summary.get("clock_end_s", summary["virtual_time_s"])
    data = cumulative_bytes_by_class(out, t_end)
    last = data.groupby(["phase", "link_class"])["cumulative_bytes"].last()
    figure = {p: {c: int(last[p, c]) for c in last[p].index} for p in last.index.levels[0]}
    assert figure == {p: {c: v for c, v in t.items() if v} for p, t in
                      summary["bytes_by_tier_by_phase"].items()}  # fmt: skip
    assert (data["t"] <= t_end).all()


def test_a_dropped_message_counts_what_it_carried(tmp_path):
    out = tmp_path / "run"
    summary = run(DUMBBELL, out)
    check_summary_against_messages(summary, out)
    dropped = read_messages(out).query("status == 'dropped'").iloc[0]
    # alone on the 10 Mbit/s bottleneck from 8.5 s + 24 ms until the link fails at 9 s
    assert dropped["carried"] == round(BOTTLENECK * (9.0 - 8.524))
    assert summary["bytes_by_phase"] == {"traffic": 14_000_000}
    assert summary["virtual_time_s"] == pytest.approx(10.824)  # the last delivery
    assert "clock_end_s" not in summary


def test_flows_in_flight_at_the_stop_count_what_they_carried(tmp_path):
    out = tmp_path / "run"
    summary = run(DUMBBELL, out, "workload.until=5")
    check_summary_against_messages(summary, out)
    unfinished = read_messages(out).query("status == 'in_flight'")
    assert list(unfinished["id"]) == ["0", "1"]
    # both share the bottleneck from 24 ms to 5 s, half of it each
    want = round(BOTTLENECK / 2 * (5.0 - 0.024))
    assert list(unfinished["carried"]) == [want, want]
    assert summary["bytes_in_flight"] == 10_000_000
    assert summary["virtual_time_s"] == 5.0  # until: the window the user asked for


def test_training_and_inference_traffic_apart(tmp_path):
    out = tmp_path / "run"
    sets = {"workload.data.train": 270, "workload.data.test": 90,
            "workload.cloud.updates": 6, "workload.inference.requests": 4}  # fmt: skip
    summary = run(
        ROOT / "scenarios" / "mosei_async.yaml", out,
        *(f"{k}={json.dumps(v)}" for k, v in sets.items()),
    )  # fmt: skip
    check_summary_against_messages(summary, out)
    messages = pd.read_csv(out / "messages.csv")
    phase_of_kind = messages.groupby("kind")["phase"].unique()
    assert {k for k, p in phase_of_kind.items() if list(p) == ["inference"]} == {
        "infer_features",
        "infer_raw",
        "infer_result",
    }
    assert all(list(p) in (["training"], ["inference"]) for p in phase_of_kind)
    assert list(summary["bytes_by_phase"]) == ["training", "inference"]
    # raw media (4 requests × 7.5 MB) are inference traffic, not training traffic
    assert summary["bytes_by_phase"]["inference"] > 4 * 7_500_000
    table = format_summary(summary, out)
    assert table.index("  training") < table.index("  inference")
    assert "(each message once)" in table and "link bytes (per hop)" in table
    busy = summary["busy_s_by_tier"]
    assert busy["end"] > 0 and busy["edge"] > 0 and busy["cloud"] > 0
