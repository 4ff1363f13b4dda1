"""``simnet live``: run a scenario's actors in several OS processes over ZeroMQ.

The launcher deals the topology's nodes to the processes in turn, starts them
(:func:`~simnet.live.host.host_main`), hands every process the others' mailbox endpoints
and one start instant on the monotonic clock, shows progress, and stops them all once
the workload is done: a traffic run when every transfer has arrived or was dropped, a
learning run when every process says its part of the workload finished. Each process
learns from the launcher when the actors of another process's node have ended (a
workload can wait for the cloud's training to end, say). It then merges what the
processes recorded into the usual run directory, times in wall-clock seconds since the
start; ``summary.json`` says ``"mode": "live"``.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from simnet.actor import DELIVERED, DROPPED, IN_FLIGHT
from simnet.config.scenario import Overrides, Scenario, load_scenario, override_pairs
from simnet.config.yaml_file import read_yaml
from simnet.engine.network import Transfer
from simnet.engine.world import MetricRow
from simnet.errors import InputError
from simnet.live.host import HostPlan, host_main
from simnet.live.keys import write_keys
from simnet.report.records import write_run
from simnet.report.summary import time_stats
from simnet.workloads import WORKLOADS

STATUSES = (DELIVERED, DROPPED, IN_FLIGHT)
READY_TIMEOUT_S = 300.0
"""Seconds a process may take to build its world and bind its mailboxes."""
START_DELAY_S = 0.5
"""Seconds between handing out the start instant and the start."""


def check_live(scenario: Scenario) -> None:
    """A live run injects no node faults (they are the simulation's to study); link events
    only into traffic workloads (nobody waits for what a link drops)."""
    config = scenario.config
    if scenario.node_events or config.faults.dropout:
        raise InputError(scenario.source, "faults", "a live run injects no node faults")
    if config.network.events and scenario.workload.kind != "traffic":  # type: ignore[attr-defined]
        raise InputError(
            scenario.source, "network.events", "a live run takes link events for traffic only"
        )


def read_hosts(path: Path, nodes: list[str]) -> dict[str, str]:
    """A ``--hosts`` file: a YAML mapping of node id to ``host:port``; as endpoints."""
    raw = read_yaml(path, "hosts file")
    if not isinstance(raw, dict):
        raise InputError(str(path), "", "a hosts file maps node ids to host:port")
    out = {}
    for node, where in raw.items():
        if node not in nodes:
            raise InputError(str(path), str(node), "unknown node")
        host, _, port = str(where).rpartition(":")
        if not host or not port.isdigit():
            raise InputError(str(path), str(node), f"expected host:port, got {where!r}")
        out[str(node)] = f"tcp://{host}:{port}"
    return out


def live_run(
    path: str,
    overrides: Overrides | None,
    seed: int | None,
    out_dir: Path,
    processes: int | None = None,
    shaping: str = "app",
    curve: bool = False,
    keys: Path | None = None,
    hosts: Path | None = None,
    time_limit_s: float = 600.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the scenario at ``path`` live; write ``out_dir`` and return the summary."""
    scenario = load_scenario(path, overrides, seed)
    check_live(scenario)
    nodes = list(scenario.topology.nodes)
    count = max(2, min(processes or os.cpu_count() or 2, len(nodes)))
    assignment = {node: i % count for i, node in enumerate(nodes)}
    addresses = read_hosts(hosts, nodes) if hosts is not None else None
    if curve:
        keys = keys or out_dir / "keys"
        if not keys.is_dir() or not any(keys.glob("*.key")):
            write_keys(keys, nodes)
    plans = [
        HostPlan(
            path,
            tuple(override_pairs(overrides)),
            seed,
            i,
            assignment,
            shaping,
            str(keys) if curve else None,
            addresses,
        )  # fmt: skip
        for i in range(count)
    ]
    started = time.perf_counter()
    results, stopped = _run_hosts(plans, scenario, time_limit_s, progress)
    return _write(scenario, out_dir, results, stopped, started, assignment, shaping, curve)


def _run_hosts(
    plans: list[HostPlan], scenario: Scenario, time_limit_s: float, progress: bool
) -> tuple[list[dict[str, Any]], str | None]:
    """Start the processes, run them until done or ``time_limit_s``, collect results."""
    spawn = multiprocessing.get_context("spawn")
    pipes = [spawn.Pipe() for _ in plans]
    workers = [
        spawn.Process(target=host_main, args=(plan, child, scenario.threads), daemon=True)
        for plan, (_, child) in zip(plans, pipes, strict=True)
    ]
    conns = [parent for parent, _ in pipes]
    for worker in workers:
        worker.start()
    try:
        ready = [_expect(conn, "ready", READY_TIMEOUT_S) for conn in conns]
        peers = {node: endpoint for r in ready for node, endpoint in r.items()}
        start_at = time.monotonic() + START_DELAY_S
        for conn in conns:
            conn.send((peers, start_at))
        stopped = _watch(conns, scenario, start_at, time_limit_s, progress)
        for conn in conns:
            conn.send("stop")
        results = [_expect(conn, "result", 60.0) for conn in conns]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.terminate()
    return results, stopped


def _expect(conn: Connection, what: str, timeout_s: float) -> Any:
    """The next message ``what`` from a process (its progress reports skipped)."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        if not conn.poll(left):
            break
        kind, value = conn.recv()
        if kind == "error":
            raise RuntimeError(value)
        if kind == what:
            return value
    raise RuntimeError(f"a live process sent no {what} within {timeout_s:g} s")


def _watch(
    conns: list[Connection], scenario: Scenario, start_at: float, limit_s: float, show: bool
) -> str | None:
    """Follow the progress reports until the workload is done (``None``) or why not."""
    workload = scenario.workload
    traffic = workload.kind == "traffic"  # type: ignore[attr-defined]
    until = getattr(workload, "until", None)
    status: dict[int, dict[str, Any]] = {}
    told: set[str] = set()
    bar = tqdm(desc=f"{scenario.name} (live)", disable=not show, leave=False, dynamic_ncols=True)
    try:
        while True:
            for conn in wait(conns, timeout=1.0):
                kind, value = conn.recv()
                if kind == "error":
                    raise RuntimeError(value)
                status[conns.index(conn)] = value
            ended = {node for s in status.values() for node in s["ended"]} - told
            if ended:  # every process learns which nodes' actors have ended
                told |= ended
                for conn in conns:
                    conn.send(("ended", sorted(ended)))
            elapsed = time.monotonic() - start_at
            if status:
                bar.total = next(iter(status.values()))["planned"]
            bar.n = sum(s["received"] if traffic else s["progress"] for s in status.values())
            bar.set_postfix_str(f"wall {elapsed:.1f} s")
            if traffic and until is not None and elapsed >= until:
                return None
            if _done(status, traffic, len(conns)):
                return None
            if elapsed > limit_s:
                return f"the live run reached its time limit of {limit_s:g} s"
    finally:
        bar.close()


def _done(status: dict[int, dict[str, Any]], traffic: bool, count: int) -> bool:
    if len(status) < count:
        return False
    if traffic:
        dropped = {i for s in status.values() for i in s["dropped"]}
        ended = sum(s["received"] for s in status.values()) + len(dropped)
        return ended >= status[0]["planned"]
    return all(s["finished"] for s in status.values())


def _write(
    scenario: Scenario,
    out_dir: Path,
    results: list[dict[str, Any]],
    stopped: str | None,
    started: float,
    assignment: dict[str, int],
    shaping: str,
    curve: bool,
) -> dict[str, Any]:
    """Merge what the processes recorded into the run directory ``out_dir``; return its
    summary."""
    transfers = _merged_transfers(scenario, results)
    metrics = sorted((MetricRow(*m) for r in results for m in r["metrics"]), key=lambda m: m.t)
    summary = _summary(scenario, results, transfers, stopped, started, shaping, curve)
    main = next((i for i, r in enumerate(results) if r["main"]), 0)
    run = WORKLOADS[summary["workload"]].Run
    parts = run.combine([r["part"] for r in results], main, assignment)
    summary.update({k: v for k, v in parts.items() if k not in summary})
    if not summary["complete"]:
        waiting = [w for r in results for w in r["waiting"]]
        reason = stopped or "the workload did not finish"
        summary["incomplete_reason"] = "; ".join([reason, *waiting[:5]])
    write_run(out_dir, scenario.as_run(), transfers, metrics, summary)
    return summary


def _end_times(results: list[dict[str, Any]]) -> tuple[dict[int, float], dict[int, float]]:
    """Message id → when it arrived, and id → when a link first dropped it."""
    received = {int(i): t for r in results for i, t in r["received_at"].items()}
    dropped: dict[int, float] = {}
    for r in results:
        for i, t in r["dropped_at"].items():
            dropped[int(i)] = min(t, dropped.get(int(i), t))
    return received, dropped


def _merged_transfers(scenario: Scenario, results: list[dict[str, Any]]) -> list[Transfer]:
    """One :class:`Transfer` per message any process sent, with its fate, in id order.

    A traffic run keeps the ids of its transfers; otherwise messages are numbered in
    order of sending (``t_send``, then the id the sender gave them)."""
    received, dropped = _end_times(results)
    rows = sorted((row for r in results for row in r["sent"]), key=lambda w: (w["t_send"], w["id"]))
    traffic = scenario.workload.kind == "traffic"  # type: ignore[attr-defined]
    transfers = []
    for rank, row in enumerate(rows):
        t_recv, t_drop = received.get(row["id"]), dropped.get(row["id"])
        status = DELIVERED if t_recv is not None else DROPPED if t_drop else IN_FLIGHT
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


def _busy_by_tier(scenario: Scenario, results: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds spent computing, summed over the nodes of each tier."""
    busy: Counter[str] = Counter()
    for r in results:
        for node, seconds in r["busy_s"].items():
            busy[scenario.topology.nodes[node].tier] += seconds
    return dict(busy)


def _summary(
    scenario: Scenario,
    results: list[dict[str, Any]],
    transfers: list[Transfer],
    stopped: str | None,
    started: float,
    shaping: str,
    curve: bool,
) -> dict[str, Any]:
    """The headline figures of the run, before the workload adds its own."""
    traffic = scenario.workload.kind == "traffic"  # type: ignore[attr-defined]
    phases: Counter[str] = Counter()
    for t in transfers:
        phases[t.phase] += t.size
    finished = [r["finished_at"] for r in results if r["finished"]]
    complete = stopped is None and (traffic or len(finished) == len(results))
    durations = np.array([t.t_recv - t.t_send for t in transfers if t.t_recv is not None])
    delivered = [t for t in transfers if t.status == DELIVERED]
    summary: dict[str, Any] = {
        "name": scenario.name,
        "complete": complete,
        "mode": "live",
        "seed": scenario.seed,
        "threads": scenario.threads,
        "workload": scenario.workload.kind,  # type: ignore[attr-defined]
        "processes": len(results),
        "shaping": shaping,
        "curve": curve,
        "virtual_time_s": (
            max(finished)
            if finished and not traffic
            else max((t.t_recv for t in delivered), default=0.0)
        ),  # fmt: skip
        "wall_time_s": time.perf_counter() - started,
        "messages": {s: sum(t.status == s for t in transfers) for s in STATUSES},
        "bytes_total": sum(t.size for t in transfers),
        "bytes_delivered": sum(t.size for t in delivered),
        "bytes_in_flight": sum(t.size for t in transfers if t.status == IN_FLIGHT),
        "bytes_by_phase": dict(phases),
        "bytes_by_tier_by_phase": {},
        "busy_s_by_tier": _busy_by_tier(scenario, results),
        "faults": dict(sum((Counter(r["faults"]) for r in results), Counter())),
        "compute_overrun_s": sum(v for r in results for v in r["overrun_s"].values()),
        "rejected_frames": sum(n for r in results for n in r["rejected"].values()),
    }
    if durations.size:
        summary["transfer_time_s"] = time_stats(durations)
    return summary
