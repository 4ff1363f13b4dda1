"""The summary table ``simnet run`` prints (the figures are ``summary.json``'s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simnet.protocols.inference import TERMS as INFERENCE_TERMS
from simnet.report.summary import phase_order


def format_summary(summary: dict[str, Any], out_dir: Path) -> str:
    """A short human-readable table of a run's headline figures: training traffic first,
    other phases (inference) apart; message bytes (each message once) and link bytes
    (each hop) labelled as such."""
    rows = [] if summary["complete"] else [("INCOMPLETE", summary["incomplete_reason"])]
    clock = summary.get("clock_end_s")
    ran_on = f" (the clock ran on to {clock:.6g} s)" if clock is not None else ""
    rows += [
        ("run directory", str(out_dir)),
        ("virtual time", f"{summary['virtual_time_s']:.6g} s{ran_on}"),
        ("wall time", f"{summary['wall_time_s']:.3g} s"),
        ("messages", ", ".join(f"{v} {k}" for k, v in summary["messages"].items() if v)),
        ("message bytes", f"{summary['bytes_total']:,} B (each message once)"),
    ]
    for phase in phase_order(summary["bytes_by_phase"]):
        by_tier = summary["bytes_by_tier_by_phase"].get(phase, {})
        links = ", ".join(f"{k} {v:,} B" for k, v in by_tier.items()) or "none"
        rows.append((f"  {phase}", f"{summary['bytes_by_phase'][phase]:,} B"))
        rows.append(("    link bytes (per hop)", links))
    if summary["bytes_in_flight"]:
        rows.append(("  still in flight", f"{summary['bytes_in_flight']:,} B"))
    faults = {k: v for k, v in summary["faults"].items() if v}
    if faults:
        rows.append(("faults", ", ".join(f"{v} {k}" for k, v in faults.items())))
    busy = ", ".join(f"{k} {v:.4g} s" for k, v in summary["busy_s_by_tier"].items() if v)
    if busy:
        rows.append(("compute busy time", busy))
    energy = summary.get("energy_by_tier", {})
    if any(e["total_j"] for e in energy.values()):
        rows.append(("energy", ", ".join(f"{k} {e['total_j']:.4g} J" for k, e in energy.items())))
        states = ("compute_j", "tx_j", "rx_j", "idle_j")
        for tier, e in energy.items():
            if e["total_j"]:
                rows.append((f"  {tier}", ", ".join(f"{k[:-2]} {e[k]:.4g} J" for k in states)))
    rows += _learning_rows(summary)
    times = summary.get("transfer_time_s")
    if times:
        rows.append(
            ("transfer time", f"mean {times['mean']:.4g} s, p95 {times['p95']:.4g} s, "
             f"max {times['max']:.4g} s")
        )  # fmt: skip
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


HEADLINE = ("acc2_non0", "f1_non0", "mae", "accuracy", "f1_macro", "rouge_lsum", "bertscore")
"""Metrics shown in the summary table, when a run has them."""


def _scores(metrics: dict[str, float | None]) -> str:
    return ", ".join(
        f"{k} {'null' if metrics[k] is None else format(metrics[k], '.3f')}"
        for k in HEADLINE
        if k in metrics
    )


def personalisation_gain(entries: dict[str, dict[str, dict[str, float]]]) -> str:
    """Each edge's personalised minus global acc2, and their mean (``""`` if none)."""
    gains = {
        edge: e["personalised"]["acc2"] - e["global"]["acc2"]
        for edge, e in entries.items()
        if "acc2" in e["personalised"] and "acc2" in e["global"]
    }
    if not gains:
        return ""
    mean = sum(gains.values()) / len(gains)
    return ", ".join(f"{edge} {g:+.3f}" for edge, g in gains.items()) + f" (mean {mean:+.3f})"


def _mlecs_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows for an ML-ECS run: device and server scores, the transmitted share."""
    scores = (
        {"devices Rouge-LSum": "device_rouge_lsum", "devices BERTScore": "device_bertscore"}
        if summary.get("device_rouge_lsum")
        else {"devices F1 (macro)": "device_f1_macro", "devices accuracy": "device_accuracy"}
    )
    rows = [
        (label, ", ".join(f"{k} {v:.3f}" for k, v in (summary[key] or {}).items()) or "none")
        for label, key in scores.items()
    ]
    if summary["server"]:
        rows.append(("server (LLM) model", _scores(summary["server"])))
    share = summary["transmitted_share"]
    rows.append(
        ("uploaded per round", f"{share['mean']:.2%} of a device model's parameters (devices "
         f"{share['min']:.2%}–{share['max']:.2%}, from the messages)")
    )  # fmt: skip
    return rows


def _learning_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows for a learning run: cloud and per-edge scores, time to target, staleness."""
    if "device_f1_macro" in summary:
        return _mlecs_rows(summary)
    if "cloud" not in summary:
        return []
    rows = [(f"cloud model (v{summary['cloud']['version']})", _scores(summary["cloud"]))]
    rows += [(f"  {edge} personalised", _scores(m)) for edge, m in summary["edges"].items()]
    gain = personalisation_gain(summary.get("personalisation", {}))
    if gain:
        rows.append(("personalisation gain (acc2)", gain))
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
