"""From what a live run's processes recorded to its run directory, and parts across machines.

A launcher holds a *part* of a run: the scenario as run, its options and, for each of its
processes, the nodes it ran and its result (what :func:`~simnet.live.host.host_main`
recorded). A one-launcher run writes its one part straight into the run directory
(:func:`write_live_run`); a launcher of a run across machines (``--only``) writes it as
``part.json`` (:func:`write_part`), and ``simnet live merge`` checks that the parts belong
together (:func:`read_parts`) and writes the run directory from all of them with the same
:func:`write_live_run`. Times are wall-clock seconds since the run's start.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simnet.actor import DELIVERED, DROPPED, IN_FLIGHT
from simnet.config.scenario import relative_paths
from simnet.engine.network import Transfer
from simnet.engine.world import MetricRow
from simnet.errors import InputError
from simnet.report.records import atomic_write, write_run
from simnet.report.summary import time_stats
from simnet.workloads import WORKLOADS

STATUSES = (DELIVERED, DROPPED, IN_FLIGHT)
PART_FILE = "part.json"
PART_FORMAT = "simnet-live-part/2"
SAME = ("shaping", "curve", "hosts", "started_at", "relative")
"""Fields every part of one run has equal, besides the scenario: its options, the hosts
file, the start instant (wall clock, s), which tells two runs apart, and the paths the
scenario gave relative (absolute, as they are in the scenario as run)."""

FIELDS = ("scenario", "nodes", "stopped", "wall_time_s", "rejected_control", "processes", *SAME)
LivePart = dict[str, Any]
"""``format``, ``scenario`` (as run, paths absolute), ``relative`` (those of its paths
the scenario file gave relative, which the run directory's ``scenario.yaml`` writes
relative to it), ``hosts`` (node → endpoint, ``None`` for a
one-launcher run), ``started_at``, ``nodes``, ``shaping``, ``curve``, ``stopped`` (why
the run stopped early, or ``None``), ``wall_time_s``, ``rejected_control`` (reason →
count) and ``processes``: ``[{index, nodes, result}]``."""


@dataclass(frozen=True)
class Part:
    """A launcher's part as written: where, which nodes, how many processes, and why the
    run stopped early (``None``: it did not)."""

    path: Path
    nodes: list[str]
    processes: int
    stopped: str | None


def write_part(out_dir: Path, part: LivePart) -> Part:
    """Write ``part`` as ``out_dir/part.json``."""
    atomic_write(out_dir / PART_FILE, json.dumps(part) + "\n")
    return Part(out_dir, part["nodes"], len(part["processes"]), part["stopped"])


def read_parts(paths: list[Path]) -> list[LivePart]:
    """The parts in the directories ``paths``, checked to make one run: the same scenario
    and options, disjoint nodes covering the topology; sorted by their first node."""
    parts = [_read(Path(p)) for p in paths]
    first, where = parts[0], _file(paths[0])
    order = {node["id"]: i for i, node in enumerate(first["scenario"]["topology"]["nodes"])}
    owner: dict[str, Path] = {}
    for path, part in zip(paths, parts, strict=True):
        source = _file(path)
        if part["scenario"]["seed"] != first["scenario"]["seed"]:
            seeds = f"{part['scenario']['seed']} here, {first['scenario']['seed']} in {where}"
            raise InputError(source, "scenario.seed", f"parts of one run share a seed ({seeds})")
        if part["scenario"] != first["scenario"]:
            raise InputError(source, "scenario", f"not the scenario of {where}")
        for field in SAME:
            if part[field] != first[field]:
                raise InputError(source, field, f"differs from {where}: not the same run")
        for node in part["nodes"]:
            if node in owner:
                raise InputError(source, "nodes", f"{node} is also in {_file(owner[node])}")
            owner[node] = path
    missing = [n for n in order if n not in owner]
    if missing:
        raise InputError(where, "nodes", f"no part holds {', '.join(missing)}: merge every part")
    return sorted(parts, key=lambda part: min(order[n] for n in part["nodes"]))


def _file(path: Path) -> str:
    return str(Path(path) / PART_FILE)


def _read(path: Path) -> LivePart:
    file = Path(path) / PART_FILE
    if not file.is_file():
        raise InputError(str(path), "", f"holds no {PART_FILE}: not a part of a live run")
    try:
        part = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(str(file), "", f"not JSON: {exc}") from None
    if not isinstance(part, dict) or part.get("format") != PART_FORMAT:
        raise InputError(str(file), "format", f"expected {PART_FORMAT!r}")
    for field in FIELDS:
        if field not in part:
            raise InputError(str(file), field, "missing")
    relative = part["relative"]
    if not isinstance(relative, list) or not all(isinstance(p, str) for p in relative):
        raise InputError(str(file), "relative", "expected a list of paths")
    return part


def write_live_run(parts: list[LivePart], out_dir: Path) -> dict[str, Any]:
    """Merge what the processes of ``parts`` recorded into the run directory ``out_dir``;
    return its summary."""
    run = parts[0]["scenario"]
    processes = [p for part in parts for p in part["processes"]]
    results = [p["result"] for p in processes]
    owner = {node: i for i, p in enumerate(processes) for node in p["nodes"]}
    stopped = next((part["stopped"] for part in parts if part["stopped"]), None)
    transfers = _merged_transfers(run["workload"]["kind"] == "traffic", results)
    metrics = sorted((MetricRow(*m) for r in results for m in r["metrics"]), key=lambda m: m.t)
    summary = _summary(run, parts, results, transfers, stopped)
    main = next((i for i, r in enumerate(results) if r["main"]), 0)
    combine = WORKLOADS[summary["workload"]].Run.combine
    figures = combine([r["part"] for r in results], main, owner)
    summary.update({k: v for k, v in figures.items() if k not in summary})
    if not summary["complete"]:
        waiting = [w for r in results for w in r["waiting"]]
        reason = stopped or "the workload did not finish"
        summary["incomplete_reason"] = "; ".join([reason, *waiting[:5]])
    as_written = relative_paths(run, set(parts[0]["relative"]), Path(out_dir).resolve())
    write_run(out_dir, as_written, transfers, metrics, summary)
    return summary


def _end_times(results: list[dict[str, Any]]) -> tuple[dict[int, float], dict[int, float]]:
    """Message id → when it arrived, and id → when it was first dropped."""
    received = {int(i): t for r in results for i, t in r["received_at"].items()}
    dropped: dict[int, float] = {}
    for r in results:
        for i, t in r["dropped_at"].items():
            dropped[int(i)] = min(t, dropped.get(int(i), t))
    return received, dropped


def _merged_transfers(traffic: bool, results: list[dict[str, Any]]) -> list[Transfer]:
    """One :class:`Transfer` per message any process sent, with its fate, in id order.

    A traffic run keeps the ids of its transfers; otherwise messages are numbered in
    order of sending (``t_send``, then the id the sender gave them)."""
    received, dropped = _end_times(results)
    rows = sorted((row for r in results for row in r["sent"]), key=lambda w: (w["t_send"], w["id"]))
    transfers = []
    for rank, row in enumerate(rows):
        t_recv, t_drop = received.get(row["id"]), dropped.get(row["id"])
        status = DELIVERED if t_recv is not None else DROPPED if t_drop is not None else IN_FLIGHT
        transfers.append(
            Transfer(
                row["id"] if traffic else rank,
                row["src"],
                row["dst"],
                row["kind"],
                row["size"],
                row["t_send"],
                tuple(row["path"]),
                status=status,
                phase=row["phase"],
                carried=row["size"] if t_recv is not None else 0,
                t_recv=t_recv,
                t_drop=None if t_recv is not None else t_drop,
            )  # fmt: skip
        )
    transfers.sort(key=lambda t: t.id)
    return transfers


def _summed(counts: list[dict[str, int]]) -> dict[str, int]:
    return dict(sum((Counter(c) for c in counts), Counter()))


def _summary(
    run: dict[str, Any],
    parts: list[LivePart],
    results: list[dict[str, Any]],
    transfers: list[Transfer],
    stopped: str | None,
) -> dict[str, Any]:
    """The headline figures of the run, before the workload adds its own."""
    traffic = run["workload"]["kind"] == "traffic"
    tier = {node["id"]: node["tier"] for node in run["topology"]["nodes"]}
    phases: Counter[str] = Counter()
    for t in transfers:
        phases[t.phase] += t.size
    busy: Counter[str] = Counter()
    for r in results:
        for node, seconds in r["busy_s"].items():
            busy[tier[node]] += seconds
    finished = [r["finished_at"] for r in results if r["finished"]]
    complete = stopped is None and (traffic or len(finished) == len(results))
    durations = np.array([t.t_recv - t.t_send for t in transfers if t.t_recv is not None])
    delivered = [t for t in transfers if t.status == DELIVERED]
    rejected = _summed([r["rejected"] for r in results])
    summary: dict[str, Any] = {
        "name": run["name"],
        "complete": complete,
        "mode": "live",
        "seed": run["seed"],
        "threads": run["execution"]["threads"],
        "workload": run["workload"]["kind"],
        "processes": len(results),
        "shaping": parts[0]["shaping"],
        "curve": parts[0]["curve"],
        "virtual_time_s": (
            max(finished)
            if finished and not traffic
            else max((t.t_recv for t in delivered), default=0.0)
        ),  # fmt: skip
        "wall_time_s": max(part["wall_time_s"] for part in parts),
        "messages": {s: sum(t.status == s for t in transfers) for s in STATUSES},
        "bytes_total": sum(t.size for t in transfers),
        "bytes_delivered": sum(t.size for t in delivered),
        "bytes_in_flight": sum(t.size for t in transfers if t.status == IN_FLIGHT),
        "bytes_by_phase": dict(phases),
        "bytes_by_tier_by_phase": {},
        "busy_s_by_tier": dict(busy),
        "faults": _summed([r["faults"] for r in results]),
        "compute_overrun_s": sum(v for r in results for v in r["overrun_s"].values()),
        "rejected_frames": sum(rejected.values()),
        "live": {
            "launchers": len(parts),
            "rejected_frames": rejected,
            "rejected_control": _summed([part["rejected_control"] for part in parts]),
            "peak_rss_bytes": max(r.get("peak_rss_bytes", 0) for r in results),
            "evicted_partials": sum(r.get("evicted_partials", 0) for r in results),
        },
    }
    if durations.size:
        summary["transfer_time_s"] = time_stats(durations)
    return summary
