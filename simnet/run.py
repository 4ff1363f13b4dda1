"""Run a scenario to completion and write its run directory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from simnet.figures import write_run_figures
from simnet.network import DELIVERED, DROPPED, IN_FLIGHT
from simnet.protocols.inference import TERMS as INFERENCE_TERMS
from simnet.records import write_run
from simnet.scenario import Scenario
from simnet.workloads import WORKLOADS


def network_summary(world: Any) -> dict[str, Any]:
    """Byte and message counts of a finished world (bytes are message sizes, except
    ``bytes_by_tier``: bytes carried, per hop). Every ``sent`` splits into ``delivered``,
    ``dropped`` and ``in_flight`` (messages the clock stopped on)."""
    net = world.network
    statuses = [t.status for t in net.transfers]
    return {
        "messages": {s: statuses.count(s) for s in (DELIVERED, DROPPED, IN_FLIGHT)},
        "bytes_total": net.bytes_sent,
        "bytes_delivered": net.bytes_delivered,
        "bytes_dropped": net.bytes_dropped,
        "bytes_in_flight": net.bytes_sent - net.bytes_delivered - net.bytes_dropped,
        "bytes_by_tier": {k: round(v) for k, v in sorted(net.class_bytes.items())},
        "bytes_by_kind": _with_in_flight(net.kind_bytes),
        "message_bytes_by_link_class": _with_in_flight(net.class_messages),
    }


def _with_in_flight(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {
        key: {**c, IN_FLIGHT: c["sent"] - c[DELIVERED] - c[DROPPED]}
        for key, c in sorted(counts.items())
    }


def run_scenario(
    scenario: Scenario, out_dir: Path, progress: bool = True, figures: bool = True
) -> dict[str, Any]:
    """Simulate ``scenario``, write ``out_dir`` (and its ``figures/`` unless told not
    to) and return its summary; ``summary["complete"]`` says whether the workload
    finished (else ``incomplete_reason`` says who waited for what)."""
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(scenario.threads)
    try:
        world = scenario.world()
        kind = WORKLOADS[scenario.workload.kind]  # type: ignore[attr-defined]

        def advance(n: float) -> None:
            bar.update(n)
            bar.set_postfix_str(f"virtual {world.env.now:.4g} s", refresh=False)

        workload = kind.Run(scenario.workload, world, advance)
        bar = tqdm(
            total=workload.progress_total,
            unit=workload.progress_unit,
            desc=scenario.name,
            disable=not progress,
            leave=False,
            dynamic_ncols=True,
        )
        workload.start()
        until = workload.until
        limit = scenario.time_limit_s if until is None else min(until, scenario.time_limit_s)
        try:
            stopped = world.run(until=limit, idle=until is not None)
        finally:
            bar.close()
        if stopped is None and until is None and world.env.peek() < float("inf"):
            stopped = f"the clock reached execution.time_limit_s = {limit:g} s with events left"
        stalled = None if workload.finished else stopped
        summary: dict[str, Any] = {
            "name": scenario.name,
            "complete": workload.finished and stalled is None,
            "mode": "sim",
            "seed": scenario.seed,
            "threads": scenario.threads,
            "workload": scenario.workload.kind,  # type: ignore[attr-defined]
            "virtual_time_s": float(world.env.now),
            "wall_time_s": time.perf_counter() - started,
            **network_summary(world),
            "faults": fault_summary(world),
            **workload.summary(),
        }
    finally:
        torch.set_num_threads(threads)
    if not summary["complete"]:
        summary = {**summary, "incomplete_reason": incomplete_reason(world, stalled)}
    write_run(out_dir, scenario.as_run(), world.network.transfers, world.metrics, summary)
    if figures:
        write_run_figures(out_dir)
    return summary


FAULT_COUNTS = ("crash", "recovery", "dropout", "retry", "gave_up", "skipped_push")
"""Fault-related events every summary counts (``World.count``), zeros included."""


def fault_summary(world: Any) -> dict[str, int]:
    """How many crashes, recoveries, drop-outs, retries, give-ups and skipped pushes."""
    return {what: int(world.faults[what]) for what in FAULT_COUNTS} | {
        k: int(v) for k, v in sorted(world.faults.items()) if k not in FAULT_COUNTS
    }


def incomplete_reason(world: Any, stopped: str | None) -> str:
    """One line saying why a run stopped before its workload finished: the clock stalled
    or hit its limit (``stopped``), or no event was left; and who waited for what."""
    why = stopped or f"no event left at t = {world.env.now:.6g} s"
    waits = world.waiting()
    if not waits:
        return f"{why}; nobody was waiting for a message"
    shown = "; ".join(waits[:6]) + (f"; … {len(waits) - 6} more" if len(waits) > 6 else "")
    return f"{why}: {shown}"


def format_summary(summary: dict[str, Any], out_dir: Path) -> str:
    """A short human-readable table of a run's headline figures."""
    rows = [] if summary["complete"] else [("INCOMPLETE", summary["incomplete_reason"])]
    rows += [
        ("run directory", str(out_dir)),
        ("virtual time", f"{summary['virtual_time_s']:.6g} s"),
        ("wall time", f"{summary['wall_time_s']:.3g} s"),
        ("messages", ", ".join(f"{v} {k}" for k, v in summary["messages"].items() if v)),
        ("bytes sent", f"{summary['bytes_total']:,} B"),
    ]
    rows += [(f"  on {k} links", f"{v:,} B") for k, v in summary["bytes_by_tier"].items()]
    faults = {k: v for k, v in summary["faults"].items() if v}
    if faults:
        rows.append(("faults", ", ".join(f"{v} {k}" for k, v in faults.items())))
    rows += _learning_rows(summary)
    times = summary.get("transfer_time_s")
    if times:
        rows.append(
            ("transfer time", f"mean {times['mean']:.4g} s, p95 {times['p95']:.4g} s, "
             f"max {times['max']:.4g} s")
        )  # fmt: skip
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


HEADLINE = ("acc2_non0", "f1_non0", "mae", "accuracy", "f1_macro")
"""Metrics shown in the summary table, when a run has them."""


def _scores(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {metrics[k]:.3f}" for k in HEADLINE if k in metrics)


def _mlecs_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows for an ML-ECS run: device and server scores, the transmitted share."""
    keys = {"devices F1 (macro)": "device_f1_macro", "devices accuracy": "device_accuracy"}
    rows = [
        (label, ", ".join(f"{k} {v:.3f}" for k, v in (summary[key] or {}).items()) or "none")
        for label, key in keys.items()
    ]
    if summary["server"]:
        rows.append(("server (LLM) model", _scores(summary["server"])))
    share = summary["transmitted_share"]
    rows.append(("uploaded per round", f"{share:.2%} of a device model's parameters"))
    return rows


def _learning_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows for a learning run: cloud and per-edge scores, time to target, staleness."""
    if "device_f1_macro" in summary:
        return _mlecs_rows(summary)
    if "cloud" not in summary:
        return []
    rows = [(f"cloud model (v{summary['cloud']['version']})", _scores(summary["cloud"]))]
    rows += [(f"  {edge} personalised", _scores(m)) for edge, m in summary["edges"].items()]
    target = summary["target"]
    reached = summary["time_to_target_s"]
    when = "not reached" if reached is None else f"{reached:.4g} s"
    rows.append((f"time to {target['metric']} {target['value']:g}", when))
    if "staleness" in summary:
        tau = summary["staleness"]
        rows.append(("staleness", f"mean {tau['mean']:.3g}, max {tau['max']}"))
    late = summary["late_updates"]
    if late["missed_deadline"]:
        rows.append(("late end updates", ", ".join(f"{v} {k}" for k, v in late.items())))
    for placement, terms in summary.get("inference", {}).items():
        failed = f", {terms['failed']} failed" if terms["failed"] else ""
        if "total_s" not in terms:
            rows.append((f"inference at {placement}", f"all {terms['failed']} requests failed"))
            continue
        parts = ", ".join(f"{k.removesuffix('_s')} {terms[k]:.3g}" for k in INFERENCE_TERMS)
        rows.append(
            (f"inference at {placement}", f"{terms['total_s']:.4g} s mean ({parts}){failed}")
        )
    return rows
