"""The federated workload: Mega-CE²'s protocol on a small world, checked from its records."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from learning.flops import forward_flops
from learning.models import PersonalizedModel, build_model
from simnet.config.scenario import load_scenario
from simnet.engine.node import Machine
from simnet.runner import run_scenario

SMALL_MODEL = {"name": "mult", "options": {"width": 8, "layers": 1, "heads": 2}}


def topology(slow_edge: float = 1.0) -> dict[str, Any]:
    """One cloud, two edges, two ends each; edge1's domain ``slow_edge`` times slower."""
    nodes = [{"id": "cloud", "tier": "cloud", "flops": 5e13}]
    links = []
    for e in range(2):
        factor = slow_edge if e == 1 else 1.0
        nodes.append({"id": f"edge{e}", "tier": "edge", "flops": 2e12 / factor})
        links.append({"a": f"edge{e}", "b": "cloud", "latency_ms": 30, "bandwidth_mbps": 100})
        for k in range(2):
            end = f"end{2 * e + k}"
            nodes.append({"id": end, "tier": "end", "flops": 5e10 / factor})
            links.append({"a": end, "b": f"edge{e}", "latency_ms": 5, "bandwidth_mbps": 20})
    return {"nodes": nodes, "links": links}


def scenario(tmp_path: Path, name: str = "fed", slow_edge: float = 1.0, **workload: Any) -> Path:
    body = {
        "kind": "federated",
        "data": {"train": 240, "valid": 40, "test": 120, "seq_len": 6, "difficulty": 0.3},
        "partition": {"scheme": "iid"},
        "model": SMALL_MODEL,
        "end": {"training": {"epochs": 2, "lr": 0.003}, "feature_flops_per_sample": 1e8},
        "edge": {"adapter_training": {"epochs": 1, "lr": 0.01}},
        "cloud": {"mode": "async", "updates": 8},
        "target": {"metric": "acc2_non0", "value": 0.6},
    }
    for key, value in workload.items():
        body[key] = {**body.get(key, {}), **value} if isinstance(value, dict) else value
    data = {"name": name, "seed": 0, "topology": topology(slow_edge), "workload": body}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(path: Path, out: Path, **overrides: Any) -> tuple[dict[str, Any], Path]:
    sets = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    summary = run_scenario(load_scenario(path, sets), out, progress=False, figures=False)
    return summary, out


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def async_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("async")
    return run(scenario(tmp), tmp / "run")


def test_bytes_in_messages_add_up_to_the_summary(async_run):
    summary, out = async_run
    messages = rows(out / "messages.csv")
    assert all(m["status"] == "delivered" for m in messages)
    assert sum(int(m["bytes"]) for m in messages) == summary["bytes_total"]
    hops = sum(int(m["bytes"]) * (len(m["route"].split(">")) - 1) for m in messages)
    assert hops == sum(summary["bytes_by_tier"].values())
    by_kind = {k: v["delivered"] for k, v in summary["bytes_by_kind"].items()}
    for kind, total in by_kind.items():
        assert total == sum(int(m["bytes"]) for m in messages if m["kind"] == kind)
    # the protocol's messages, each kind where it belongs
    kinds = {(m["kind"], m["src"][:3], m["dst"][:3]) for m in messages}
    assert kinds == {
        ("features", "end", "edg"), ("model_request", "edg", "clo"),
        ("global_model", "clo", "edg"), ("model", "edg", "end"),
        ("end_update", "end", "edg"), ("edge_update", "edg", "clo"), ("stop", "clo", "edg"),
        ("stop", "edg", "end"),
    }  # fmt: skip
    assert summary["updates_merged"] == 8 and summary["cloud"]["version"] == 8


def test_staleness_and_alpha_follow_the_merge_rule(async_run):
    summary, out = async_run
    messages = rows(out / "messages.csv")
    metrics = rows(out / "metrics.csv")
    merges = [float(m["t"]) for m in metrics if m["node"] == "cloud" and m["metric"] == "alpha"]
    taus = [int(float(m["value"])) for m in metrics if m["metric"] == "staleness"]
    alphas = [float(m["value"]) for m in metrics if m["metric"] == "alpha"]
    assert len(merges) == len(taus) == 8

    updates = sorted(
        (m for m in messages if m["kind"] == "edge_update"), key=lambda m: float(m["t_recv"])
    )[:8]
    pulls = [m for m in messages if m["kind"] == "global_model"]
    sizes = summary["edge_samples"]
    mean = sum(sizes.values()) / len(sizes)
    for k, update in enumerate(updates):
        # the version the edge pulled: merges done before the cloud sent its last model
        pull = max(
            (p for p in pulls if p["dst"] == update["src"] and p["t_send"] <= update["t_send"]),
            key=lambda p: float(p["t_send"]),
        )
        pulled = sum(t <= float(pull["t_send"]) for t in merges)
        assert taus[k] == k - pulled
        expected = min(1.0, 0.6 * (taus[k] + 1) ** -0.5 * sizes[update["src"]] / mean)
        assert alphas[k] == pytest.approx(expected)
    assert summary["staleness"]["max"] == max(taus)


def test_same_seed_same_records(async_run, tmp_path):
    _, first = async_run
    _, again = run(scenario(tmp_path), tmp_path / "again")
    for name in ("messages.csv", "metrics.csv"):
        assert (first / name).read_bytes() == (again / name).read_bytes()


def test_adapters_never_leave_the_edge(tmp_path, monkeypatch):
    sent: list[tuple[str, set[str]]] = []
    original = Machine.send

    def spy(self, message, codec=None):
        sent.append((message.kind, set(message.payload)))
        return original(self, message, codec)

    monkeypatch.setattr(Machine, "send", spy)
    summary, _ = run(scenario(tmp_path), tmp_path / "run", **{"workload.cloud.updates": 4})
    keys = set().union(*(k for _, k in sent))
    assert not [k for k in keys if "adapter" in k]
    model_keys = {frozenset(k) for kind, k in sent if kind in ("edge_update", "end_update")}
    dims = {"text": 300, "audio": 74, "vision": 35}
    base = build_model(SMALL_MODEL["name"], dims, 1, **SMALL_MODEL["options"])
    assert model_keys == {frozenset(base.state_dict())}
    # the edges did personalise: their metrics come from base + adapter
    assert set(summary["edges"]) == {"edge0", "edge1"}


def test_async_reaches_the_target_before_sync_when_one_edge_is_slow(tmp_path):
    # edge1 and its ends compute 10x slower: the sync cloud waits for them every round
    path = scenario(tmp_path, slow_edge=10.0, target={"metric": "mae", "value": 1.15})
    runs = {}
    for mode in ("async", "sync"):
        sets = {"workload.cloud.mode": mode, "workload.cloud.updates": 16}
        runs[mode], _ = run(path, tmp_path / mode, **sets)
    fast, slow = runs["async"]["time_to_target_s"], runs["sync"]["time_to_target_s"]
    assert fast is not None and slow is not None
    assert fast < slow
    # sync rounds never merge stale models; async ones do
    assert runs["sync"]["staleness"]["max"] == 0 < runs["async"]["staleness"]["max"]


def test_flat_fedavg_talks_to_ends_through_the_edges(tmp_path):
    summary, out = run(scenario(tmp_path, cloud={"mode": "flat", "updates": 2}), tmp_path / "run")
    messages = rows(out / "messages.csv")
    kinds = {m["kind"] for m in messages}
    assert kinds == {"features", "model", "end_update", "stop"}
    assert all(len(m["route"].split(">")) == 3 for m in messages)  # end > edge > cloud
    assert summary["cloud"]["version"] == 2 and summary["edges"] == {}


def test_a_deadline_leaves_slow_ends_out(tmp_path):
    path = scenario(tmp_path, slow_edge=10.0, cloud={"mode": "flat", "updates": 3})
    for policy in ("drop", "next"):
        edge = {"deadline_s": 0.6, "late_policy": policy}
        summary, _ = run(path, tmp_path / policy, **{"workload.edge": edge})
        late = summary["late_updates"]
        assert late["missed_deadline"] >= 2  # end2 and end3 miss every round
        if policy == "drop":
            assert late["used_next_round"] == 0
        else:
            assert late["used_next_round"] >= 1 and late["dropped"] == 0


def test_cloud_only_uploads_raw_media_and_trains_centrally(tmp_path):
    raw = 1_000_000
    path = scenario(
        tmp_path, cloud={"mode": "cloud_only", "updates": 3}, end={"raw_bytes_per_sample": raw}
    )
    summary, out = run(path, tmp_path / "run")
    messages = rows(out / "messages.csv")
    assert {m["kind"] for m in messages} == {"raw_media"}
    assert len(messages) == 4  # one upload per end
    samples = sum(int(m["bytes"]) for m in messages) // raw
    assert sum(int(m["bytes"]) for m in messages) == samples * raw
    # 240 train samples dealt to 4 ends, 20 % of each held out for the edges
    assert samples == 4 * 48
    times = [
        float(m["t"]) for m in rows(out / "metrics.csv") if m["metric"] == "version"
    ]  # evaluation at t = 0, then after each epoch
    last_upload = max(float(m["t_recv"]) for m in messages)
    features = samples * 1e8 / 5e13  # FLOPs on the cloud's FLOP/s
    epoch = times[2] - times[1]
    assert times[1] == pytest.approx(last_upload + features + epoch)
    assert times[3] - times[2] == pytest.approx(epoch)
    assert summary["cloud"]["version"] == 3 and summary["edges"] == {}


def test_inference_latency_terms_match_the_models(tmp_path):
    raw = 500_000
    path = scenario(
        tmp_path,
        cloud={"updates": 2},
        end={"raw_bytes_per_sample": raw},
        inference={"requests": 6, "rate_per_s": 0.5},  # spaced out: no queueing
    )
    summary, out = run(path, tmp_path / "run")
    messages = rows(out / "messages.csv")
    features = [int(m["bytes"]) for m in messages if m["kind"] == "infer_features"]
    results = [int(m["bytes"]) for m in messages if m["kind"] == "infer_result"]
    assert len(features) == 6 and len(results) == 12
    assert sum(m["kind"] == "infer_raw" and int(m["bytes"]) == raw for m in messages) == 6

    dims = {"text": 300, "audio": 74, "vision": 35}
    model = build_model(SMALL_MODEL["name"], dims, 1, **SMALL_MODEL["options"])
    sample = {m: torch.zeros(1, 6, d) for m, d in dims.items()}
    f_edge = forward_flops(PersonalizedModel(model), (sample,))
    f_cloud = forward_flops(model, (sample,))
    edge, cloud = summary["inference"]["edge"], summary["inference"]["cloud"]
    mbps = 20e6 / 8  # end-edge bytes/s
    assert edge["feature_s"] == pytest.approx(1e8 / 5e10)
    assert edge["upload_s"] == pytest.approx(0.005 + np.mean(features) / mbps)
    assert edge["compute_s"] == pytest.approx(f_edge / 2e12)
    assert edge["download_s"] == pytest.approx(0.005 + results[0] / mbps)
    assert cloud["feature_s"] == 0
    # raw media cross end-edge (20 Mbit/s, the bottleneck) and edge-cloud: 5 + 30 ms
    assert cloud["upload_s"] == pytest.approx(0.035 + raw / mbps)
    assert cloud["compute_s"] == pytest.approx((1e8 + f_cloud) / 5e13)
    assert cloud["download_s"] == pytest.approx(0.035 + results[-1] / mbps)
    assert edge["total_s"] < cloud["total_s"]


def test_ends_missing_modalities_send_less_and_edges_pool_them_with_masks(tmp_path):
    from learning.data import modality_availability

    path = scenario(
        tmp_path, partition={"scheme": "iid", "modality_rate": 0.5}, cloud={"updates": 4},
        inference={"requests": 4, "rate_per_s": 1.0},
    )  # fmt: skip
    summary, out = run(path, tmp_path / "run")
    draw = modality_availability(4, ("text", "audio", "vision"), 0.5, 0)
    held = dict(zip(["end0", "end1", "end2", "end3"], draw, strict=True))
    assert len({len(h) for h in held.values()}) > 1  # the draw is heterogeneous
    per_sample = {"text": 300, "audio": 74, "vision": 35}
    features = {
        m["src"]: int(m["bytes"]) for m in rows(out / "messages.csv") if m["kind"] == "features"
    }
    # every end uploads 12 upload + 12 test samples of 6 steps, float32, plus labels
    for end, has in held.items():
        payload = 24 * 6 * 4 * sum(per_sample[m] for m in has)
        assert payload < features[end] < payload + 2_000
    assert set(summary["edges"]) == {"edge0", "edge1"}
    assert all(0 <= e["acc2_non0"] <= 1 for e in summary["edges"].values())
    again, _ = run(path, tmp_path / "again")
    assert again["cloud"] == summary["cloud"]


def test_concat_pads_missing_modalities_and_marks_them_absent():
    from learning.data.dataset import MultimodalSplit
    from simnet.protocols.hierarchical import concat

    a = MultimodalSplit({"t": torch.ones(2, 3, 4), "a": torch.ones(2, 5, 2)}, torch.zeros(2))
    b = MultimodalSplit({"a": 2 * torch.ones(1, 5, 2)}, torch.ones(1))
    c = concat([a, b])
    assert c.modalities == ("t", "a") and c.labels.tolist() == [0, 0, 1]
    assert c.present["t"].tolist() == [True, True, False] and c.present["a"].all()
    assert c.features["t"][2].eq(0).all() and c.features["a"][2].eq(2).all()
    assert concat([a, a]).present is None  # same modalities: no masks needed
    part = c.subset([2, 0]).only(["t"])
    assert part.present["t"].tolist() == [False, True]
