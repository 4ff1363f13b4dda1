"""``simnet plot DIR``: figures of a run directory or of a sweep directory (PNG and PDF).

Run: the run figures of :mod:`simnet.report.figures`, plus ``latency_breakdown`` (stacked mean
latency terms per placement, when the run had an inference phase) and
``parameter_share`` (parameters sent per message kind, log scale, for learning runs).

Sweep (a directory with ``results.csv``; rows of incomplete runs, ``complete`` false,
are left out): ``knob_<metric>`` — each headline metric against the swept knob, one
line per other swept setting, mean ± standard deviation over seeds;
``accuracy_vs_time`` — one line per run; ``transmitted_share`` (ML-ECS: mean over devices
of the share of a device model's parameters uploaded per round, per method, log scale);
``latency_breakdown`` (Mega-CE² inference, per run). Every axis states its unit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from simnet.config.yaml_file import load_yaml  # noqa: E402
from simnet.protocols.inference import TERMS  # noqa: E402
from simnet.report.energy import SCORES  # noqa: E402
from simnet.report.figures import (  # noqa: E402
    LINESTYLES,
    energy_and_score,
    node_tiers,
    read_metrics,
    read_summary,
    save,
    write_run_figures,
)
from simnet.sweeps import RESULTS, SWEEP_COPY  # noqa: E402

FORMATS = ("png", "pdf")
HEADLINE = {
    "cloud.acc2_non0": "final cloud Acc2 (non0)",
    "time_to_target_s": "time to target (virtual s)",
    "device_f1_macro.mean": "mean device F1 (macro)",
    "transfer_time_s.mean": "mean transfer time (virtual s)",
    "bytes_total": "bytes sent (B)",
}
"""Sweep metrics drawn against the knob, when present, and their axis labels."""


def plot(path: Path) -> list[Path]:
    """Figures of the run or sweep at ``path``; ``ValueError`` if it is neither."""
    path = Path(path)
    if (path / RESULTS).is_file():
        return sweep_figures(path)
    if (path / "summary.json").is_file():
        return run_figures(path)
    raise ValueError(f"{path}: neither a complete run (summary.json) nor a sweep ({RESULTS})")


def run_figures(run_dir: Path) -> list[Path]:
    written = write_run_figures(run_dir, FORMATS)
    summary = read_summary(run_dir)
    out = run_dir / "figures"
    if "inference" in summary:
        fig = latency_breakdown({summary["name"]: summary["inference"]})
        written.append(save(fig, out / "latency_breakdown", FORMATS))
    if summary.get("parameters_by_kind"):
        written.append(save(parameter_share(summary), out / "parameter_share", FORMATS))
    return written


def latency_breakdown(runs: dict[str, dict[str, dict[str, float]]]) -> Figure:
    """Stacked bars of the mean latency terms (s) per run and placement."""
    labels, stacks = [], []
    for run, placements in runs.items():
        for placement, terms in placements.items():
            labels.append(f"{run}\\n{placement}" if len(runs) > 1 else placement)
            stacks.append([terms[t] for t in TERMS])
    fig, ax = plt.subplots(figsize=(max(4, 1.4 * len(labels)), 4), layout="constrained")
    bottom = np.zeros(len(labels))
    for i, term in enumerate(TERMS):
        values = np.array([s[i] for s in stacks])
        ax.bar(labels, values, bottom=bottom, label=term.removesuffix("_s"))
        bottom += values
    for x, total in enumerate(bottom):
        ax.annotate(f"{total:.3g} s", (x, total), ha="center", va="bottom", fontsize="small")
    ax.set_ylabel("mean latency per request (s)")
    ax.set_title("inference latency: edge vs cloud-only")
    ax.legend(title="term")
    return fig


def parameter_share(summary: dict[str, Any]) -> Figure:
    """Parameters sent per message kind (log scale)."""
    counts = {k: v for k, v in summary["parameters_by_kind"].items() if v}
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    ax.bar(list(counts), list(counts.values()))
    ax.set_yscale("log")
    ax.set_ylabel("tensor elements sent (parameters)")
    ax.set_xlabel("message kind")
    ax.set_title(summary.get("name", ""))
    return fig


def _knob(table: pd.DataFrame, swept: list[str]) -> tuple[str | None, list[str]]:
    """The swept column for the x axis (the first numeric one, else the first one that
    is not ``seed``), and the other non-seed columns."""
    candidates = [c for c in swept if c != "seed"]
    numeric = [c for c in candidates if pd.api.types.is_numeric_dtype(table[c])]
    knob = (numeric or candidates or [None])[0]
    return knob, [c for c in candidates if c != knob]


def sweep_figures(sweep_dir: Path) -> list[Path]:
    table = complete_rows(pd.read_csv(sweep_dir / RESULTS))
    config = load_yaml((sweep_dir / SWEEP_COPY).read_text())
    swept = [*config["grid"], *config["zip"]]
    knob, groups = _knob(table, swept)
    out = sweep_dir / "figures"
    out.mkdir(exist_ok=True)
    written = []
    if knob is not None:
        for metric, label in HEADLINE.items():
            if metric in table and table[metric].notna().any():
                fig = knob_figure(table, knob, groups, metric, label)
                written.append(save(fig, out / f"knob_{metric.replace('.', '_')}", FORMATS))
    fig = accuracy_lines(sweep_dir, table)
    if fig is not None:
        written.append(save(fig, out / "accuracy_vs_time", FORMATS))
    fig = accuracy_against_energy(sweep_dir, table)
    if fig is not None:
        written.append(save(fig, out / "accuracy_vs_end_energy", FORMATS))
    method = next((c for c in swept if c.split(".")[-1] == "method"), None)
    if "transmitted_share.mean" in table and method is not None:
        fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
        shares = table.groupby(method)["transmitted_share.mean"].mean() * 100
        sent = shares[shares > 0]
        ax.bar(sent.index, sent)
        for x, value in enumerate(sent):
            ax.annotate(f"{value:.3g} %", (x, value), ha="center", va="bottom")
        ax.set_yscale("log")
        ax.set_yticks(list(sent))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g} %"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.margins(y=0.25)
        ax.set_xlabel(method)
        ax.set_ylabel("uploaded per round\n(% of a device model's parameters)")
        written.append(save(fig, out / "transmitted_share", FORMATS))
    runs = {}
    for run in table["run"]:
        summary = json.loads((sweep_dir / run / "summary.json").read_text())
        if "inference" in summary:
            runs[run] = summary["inference"]
    if runs:
        written.append(save(latency_breakdown(runs), out / "latency_breakdown", FORMATS))
    return written


def complete_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of complete runs (all rows of a table without a ``complete`` column)."""
    if "complete" not in table:
        return table
    return table[table["complete"].astype(str).str.lower() == "true"]


def knob_figure(
    table: pd.DataFrame, knob: str, groups: list[str], metric: str, label: str
) -> Figure:
    """``metric`` against ``knob``: one line per combination of ``groups``, mean ± std
    over the rows (seeds) that share a knob value."""
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    values = table[knob]
    numeric = pd.api.types.is_numeric_dtype(values)
    for key, rows in table.groupby(groups) if groups else [((), table)]:
        stats = rows.groupby(knob, sort=numeric)[metric].agg(["mean", "std"]).reset_index()
        name = ", ".join(map(str, key if isinstance(key, tuple) else (key,))) or metric
        ax.errorbar(stats[knob], stats["mean"], yerr=stats["std"].fillna(0), marker="o",
                    capsize=3, label=name, linestyle="-" if numeric else "none")  # fmt: skip
    if numeric and values.min() > 0 and values.max() / values.min() >= 50:
        ax.set_xscale("log")
    ax.set_xlabel(_axis_label(knob))
    ax.set_ylabel(label)
    if groups:
        ax.legend(title=", ".join(groups))
    return fig


def _axis_label(key: str) -> str:
    units = {"bandwidth_mbps": "Mbit/s", "up_mbps": "Mbit/s", "down_mbps": "Mbit/s",
             "latency_ms": "ms", "latency_factor": "×", "bandwidth_factor": "×"}  # fmt: skip
    last = key.split(".")[-1]
    return f"{key} ({units[last]})" if last in units else key


def accuracy_lines(sweep_dir: Path, table: pd.DataFrame) -> Figure | None:
    """The cloud model's accuracy against virtual time, one line per run (runs without
    a cloud score: the mean of the nodes that report one)."""
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    drawn = False
    for run in table["run"]:
        run_dir = sweep_dir / run
        metrics = pd.read_csv(run_dir / "metrics.csv")
        clouds = {n for n, tier in node_tiers(run_dir).items() if tier == "cloud"}
        for name in SCORES:
            rows = metrics[metrics["metric"] == name]
            if rows.empty:
                continue
            at_cloud = rows[rows["node"].isin(clouds)]
            series = (at_cloud if not at_cloud.empty else rows).groupby("t")["value"].mean()
            ax.plot(series.index, series.values, marker="o", markersize=2, label=run[4:])
            who = "cloud model" if not at_cloud.empty else "mean over nodes"
            ax.set_ylabel(f"{name} ({who})")
            drawn = True
            break
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("virtual time (s)")
    ax.legend(fontsize="x-small", ncols=2)
    return fig


def accuracy_against_energy(sweep_dir: Path, table: pd.DataFrame) -> Figure | None:
    """Each run's scored models against the energy its end devices drew until then (J),
    one line per run; ``None`` if no run has energy rows and scores."""
    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    score = None
    for i, run in enumerate(table["run"]):
        points = energy_and_score(read_metrics(sweep_dir / run), "end")
        if points is None:
            continue
        score = points.attrs["score"]
        ax.plot(points["energy_j"], points["score"], marker="o", markersize=3,
                linestyle=LINESTYLES[i % len(LINESTYLES)], label=run[4:])  # fmt: skip
    if score is None:
        plt.close(fig)
        return None
    ax.set_xlabel("energy the end devices drew until the model was scored (J)")
    ax.set_ylabel(f"{score} (cloud model)")
    ax.set_xlim(left=0)
    ax.set_title("accuracy against end-device energy")
    fig.legend(fontsize="small", loc="outside right upper")
    return fig
