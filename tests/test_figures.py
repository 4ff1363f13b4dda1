"""Figures of a hand-written run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from simnet.report.figures import cumulative_bytes_by_class, write_run_figures

PNG = b"\x89PNG"

MESSAGES = """\
id,src,dst,kind,bytes,t_send,t_recv,status,t_drop,route,phase,carried
0,end0,cloud,data,1000,0.0,1.5,delivered,,end0>edge0>cloud,training,1000
1,end1,edge0,data,500,0.5,1.0,delivered,,end1>edge0,inference,500
2,cloud,end1,model,2000,1.0,,dropped,2.0,cloud>edge0>end1,training,1200
3,end0,end1,data,300,2.5,,in_flight,,end0>edge0>end1,training,100
"""

METRICS = """\
t,node,metric,value
1.0,cloud,acc2_non0,0.5
2.0,cloud,acc2_non0,0.6
1.0,edge0,acc2_non0,0.4
2.0,edge0,acc2_non0,0.55
1.0,end0,transfer_time_s,1.5
"""


def make_run(
    run_dir: Path, messages: str = MESSAGES, metrics: str = METRICS, summary: bool = True
) -> Path:
    """A run directory with the topology cloud / edge0 / end0, end1 (a tree)."""
    nodes = [
        {"id": "cloud", "tier": "cloud", "flops": 5e13},
        {"id": "edge0", "tier": "edge", "flops": 2e12},
        {"id": "end0", "tier": "end", "flops": 5e10},
        {"id": "end1", "tier": "end", "flops": 5e10},
    ]
    links = [
        {"a": "end0", "b": "edge0", "latency_ms": 5, "bandwidth_mbps": 20},
        {"a": "end1", "b": "edge0", "latency_ms": 5, "bandwidth_mbps": 20},
        {"a": "edge0", "b": "cloud", "latency_ms": 30, "bandwidth_mbps": 100},
    ]
    run_dir.mkdir(parents=True, exist_ok=True)
    scenario = {"name": "t", "seed": 0, "topology": {"nodes": nodes, "links": links}}
    (run_dir / "scenario.yaml").write_text(yaml.safe_dump(scenario))
    (run_dir / "messages.csv").write_text(messages)
    (run_dir / "metrics.csv").write_text(metrics)
    if summary:
        (run_dir / "summary.json").write_text(json.dumps({"name": "t", "virtual_time_s": 3.0}))
    return run_dir


def test_cumulative_bytes_count_what_each_message_carried_on_every_link(tmp_path: Path) -> None:
    data = cumulative_bytes_by_class(make_run(tmp_path), t_end=3.0)
    columns = ["phase", "link_class", "t", "cumulative_bytes"]
    rows = [tuple(r) for r in data[columns].itertuples(index=False)]
    assert rows == [
        ("training", "end-edge", 1.5, 1000),  # message 0, first hop, at its t_recv
        ("training", "end-edge", 2.0, 2200),  # message 2 (dropped): the 1,200 B it carried
        ("training", "end-edge", 3.0, 2400),  # message 3 (in flight): 100 B on both hops
        ("training", "edge-cloud", 1.5, 1000),  # message 0, second hop
        ("training", "edge-cloud", 2.0, 2200),  # message 2, first hop
        ("inference", "end-edge", 1.0, 500),  # message 1, a phase of its own
    ]
    assert list(data.columns) == ["t", "phase", "link_class", "cumulative_bytes"]


def test_cumulative_bytes_of_no_messages_is_empty(tmp_path: Path) -> None:
    header = MESSAGES.splitlines()[0] + "\n"
    data = cumulative_bytes_by_class(make_run(tmp_path, messages=header))
    assert data.empty
    assert list(data.columns) == ["t", "phase", "link_class", "cumulative_bytes"]


def test_write_run_figures_writes_pngs_in_order(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    paths = write_run_figures(run_dir)
    names = ["bytes_per_tier.png", "accuracy_vs_time.png", "bytes_per_kind.png"]
    assert paths == [run_dir / "figures" / n for n in names]
    for path in paths:
        assert path.read_bytes().startswith(PNG)


def test_no_accuracy_metric_and_no_messages(tmp_path: Path) -> None:
    run_dir = make_run(
        tmp_path / "run",
        messages=MESSAGES.splitlines()[0] + "\n",
        metrics=METRICS.splitlines()[0] + "\n",
    )
    paths = write_run_figures(run_dir)
    assert [p.name for p in paths] == ["bytes_per_tier.png", "bytes_per_kind.png"]
    for path in paths:
        assert path.read_bytes().startswith(PNG)


def test_incomplete_run_is_refused(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", summary=False)
    with pytest.raises(ValueError, match="not a complete run"):
        write_run_figures(run_dir)
    assert not (run_dir / "figures").exists()


def test_accuracy_of_many_nodes(tmp_path: Path) -> None:
    nodes = ["cloud", "edge0", "end0", "end1"] + [f"x{i}" for i in range(6)]  # > 8 nodes
    rows = [f"{t},{n},mae,{1.0 / t}" for t in (1.0, 2.0) for n in nodes]
    metrics = "t,node,metric,value\n" + "\n".join(rows) + "\n"
    paths = write_run_figures(make_run(tmp_path / "run", metrics=metrics))
    assert paths[1].name == "accuracy_vs_time.png"
    assert paths[1].read_bytes().startswith(PNG)
