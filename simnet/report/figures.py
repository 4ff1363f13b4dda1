"""Figures of one run directory, drawn only from its files (see ``simnet.report.records``).

``write_run_figures`` writes PNGs (150 dpi; other formats on request, ``simnet plot``
adds PDF) into ``run_dir/figures/``. Times are virtual seconds; bytes are shown in MB
(10⁶ bytes), as link bytes (each hop a message crosses, what it carried there) or message
bytes (each message once), as each axis says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from simnet.config.yaml_file import load_yaml  # noqa: E402
from simnet.report.energy import SCORES  # noqa: E402
from simnet.report.records import load_summary  # noqa: E402
from simnet.topology.graph import class_order, link_class  # noqa: E402

ACCURACY_METRICS = ("acc2_non0", "f1_non0", "mae", "accuracy", "f1_macro")
"""Metrics of ``metrics.csv`` drawn in ``accuracy_vs_time.png``, in subplot order."""

METRIC_LABELS = {"mae": "MAE (lower is better)"}
"""Y-axis labels that differ from the metric name."""

MANY_NODES = 8
"""Above this many nodes, only cloud nodes get a colour and a legend entry."""

DPI = 150
MB = 1e6
LINESTYLES = ("-", "--", "-.", ":")
"""Cycled per link class so that classes with equal byte counts stay visible."""
_TIME_COLUMNS = ("t_send", "t_recv", "t_drop")


def read_summary(run_dir: Path) -> dict[str, Any]:
    """``summary.json`` of ``run_dir`` (an incomplete run's too: its figures show how far
    it got); ``ValueError`` if there is none, the run was never written up."""
    summary = load_summary(run_dir)
    if summary is None:
        raise ValueError(f"{run_dir}: not a complete run (no summary.json)")
    return summary


def node_tiers(run_dir: Path) -> dict[str, str]:
    """Node id → tier, from the inline topology of ``run_dir/scenario.yaml``."""
    scenario = load_yaml((Path(run_dir) / "scenario.yaml").read_text(encoding="utf-8"))
    return {str(n["id"]): str(n["tier"]) for n in scenario["topology"]["nodes"]}


def read_messages(run_dir: Path) -> pd.DataFrame:
    """``messages.csv`` with ids as text, ``bytes`` as int and times (s) as float, NaN if empty."""
    return pd.read_csv(
        Path(run_dir) / "messages.csv",
        dtype={
            "id": str,
            "src": str,
            "dst": str,
            "kind": str,
            "status": str,
            "route": str,
            "phase": str,
        },  # fmt: skip
        keep_default_na=False,
        na_values={c: [""] for c in _TIME_COLUMNS},
    ).astype({"bytes": "int64", **{c: "float64" for c in _TIME_COLUMNS}})


def cumulative_bytes_by_class(run_dir: Path, t_end: float | None = None) -> pd.DataFrame:
    """Cumulative link bytes per phase and link class over virtual time.

    Every message counts the bytes it ``carried`` (all of a delivered one, what a dropped
    or unfinished one had transmitted) on every link of its route, at its ``t_recv``
    (delivered), ``t_drop`` (dropped) or ``t_end`` (still in flight when the run stopped;
    default: its last event), so the last values equal ``summary.json``'s
    ``bytes_by_tier_by_phase``. Columns: ``t`` (s), ``phase``, ``link_class`` (e.g.
    ``end-edge``), ``cumulative_bytes``; sorted by phase, class (end first), time.
    """
    tiers = node_tiers(run_dir)
    messages = read_messages(run_dir)
    if t_end is None:
        t_end = float(pd.concat([messages["t_recv"], messages["t_drop"]]).max())
    rows = []
    for m in messages.itertuples(index=False):
        t = {"delivered": m.t_recv, "dropped": m.t_drop}.get(m.status, t_end)
        route = m.route.split(">")
        for a, b in zip(route[:-1], route[1:], strict=True):
            rows.append((t, m.phase, link_class(tiers[a], tiers[b]), m.carried))
    per_time = (
        pd.DataFrame(rows, columns=["t", "phase", "link_class", "bytes"])
        .astype({"t": "float64", "bytes": "int64"})
        .groupby(["phase", "link_class", "t"], as_index=False)["bytes"]
        .sum()
    )
    per_time["order"] = per_time["link_class"].map(class_order)
    per_time["phase_order"] = per_time["phase"].map(lambda p: (p != "training", p))
    per_time = per_time.sort_values(["phase_order", "order", "link_class", "t"])
    per_time["cumulative_bytes"] = per_time.groupby(["phase", "link_class"])["bytes"].cumsum()
    return per_time[["t", "phase", "link_class", "cumulative_bytes"]].reset_index(drop=True)


def _note(ax: Axes, text: str) -> None:
    """Write ``text`` in the middle of an empty plot."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def save(fig: Figure, path: Path, formats: tuple[str, ...] = ("png",)) -> Path:
    """Save ``fig`` as ``path`` in each of ``formats`` (PNG at ``DPI``), close it, and
    return the path of the first format."""
    try:
        for fmt in formats:
            fig.savefig(path.with_suffix(f".{fmt}"), dpi=DPI)
    finally:
        plt.close(fig)
    return path.with_suffix(f".{formats[0]}")


def plot_bytes_per_tier(run_dir: Path, summary: dict[str, Any]) -> Figure:
    """Step lines of cumulative link MB per link class against virtual time (s), one
    panel per phase (training first)."""
    t_end = summary.get("clock_end_s", summary.get("virtual_time_s"))
    data = cumulative_bytes_by_class(run_dir, t_end)
    phases = list(dict.fromkeys(data["phase"])) or ["training"]
    fig, axes = plt.subplots(
        len(phases), 1, squeeze=False, sharex=True, figsize=(7, 1 + 3 * len(phases)),
        layout="constrained",
    )  # fmt: skip
    for ax, phase in zip(axes[:, 0], phases, strict=True):
        rows = data[data["phase"] == phase]
        for i, (name, group) in enumerate(rows.groupby("link_class", sort=False)):
            t = [0.0, *group["t"]]
            mb = [0.0, *(group["cumulative_bytes"] / MB)]
            if t_end is not None and t_end > t[-1]:
                t.append(t_end)
                mb.append(mb[-1])
            style = LINESTYLES[i % len(LINESTYLES)]
            ax.plot(t, mb, drawstyle="steps-post", linestyle=style, label=name)
        if rows.empty:
            _note(ax, "no messages" if read_messages(run_dir).empty else "no bytes on links")
        else:
            ax.legend(title="link class", loc="upper left")
        ax.set_ylabel(f"{phase}: link bytes,\nper hop (MB)")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    axes[-1, 0].set_xlabel("virtual time (s)")
    axes[0, 0].set_title(summary.get("name", Path(run_dir).name))
    return fig


def plot_accuracy_vs_time(run_dir: Path, summary: dict[str, Any]) -> Figure | None:
    """One subplot per accuracy metric present, one line per node; ``None`` if none present."""
    metrics = pd.read_csv(
        Path(run_dir) / "metrics.csv", dtype={"node": str, "metric": str}, keep_default_na=False
    )
    metrics = metrics[metrics["metric"].isin(ACCURACY_METRICS)]
    if metrics.empty:
        return None
    present = [m for m in ACCURACY_METRICS if m in set(metrics["metric"])]
    tiers = node_tiers(run_dir)
    many = metrics["node"].nunique() > MANY_NODES
    personalised = set(summary.get("edges", {}))  # learning runs score edges with adapters
    fig, axes = plt.subplots(
        len(present),
        1,
        sharex=True,
        squeeze=False,
        figsize=(7, 1 + 2.5 * len(present)),
        layout="constrained",
    )
    for ax, metric in zip(axes[:, 0], present, strict=True):
        rows = metrics[metrics["metric"] == metric].sort_values("t")
        grey = {n for n in rows["node"] if many and tiers.get(n) != "cloud"}
        grey_label = f"{len(grey)} other nodes"
        for node, group in rows.groupby("node"):
            if node in grey:
                style = {"color": "0.75", "linewidth": 0.6, "markersize": 2, "label": grey_label}
                grey_label = "_nolegend_"
            else:
                label = f"{node} (personalised)" if node in personalised else node
                style = {"markersize": 3, "label": label, "zorder": 3}
            ax.plot(group["t"], group["value"].astype(float), marker="o", **style)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.legend(fontsize="small", loc="best")
    axes[-1, 0].set_xlabel("virtual time (s)")
    axes[0, 0].set_title(summary.get("name", Path(run_dir).name))
    return fig


def plot_bytes_per_kind(run_dir: Path, summary: dict[str, Any]) -> Figure:
    """Horizontal bars of total MB per message kind (all statuses), largest on top."""
    messages = read_messages(run_dir)
    totals = messages.groupby("kind")["bytes"].sum().sort_values(ascending=False) / MB
    fig, ax = plt.subplots(figsize=(7, 1.5 + 0.4 * max(len(totals), 1)), layout="constrained")
    if totals.empty:
        _note(ax, "no messages")
    else:
        bars = ax.barh(totals.index, totals.to_numpy())
        ax.bar_label(bars, fmt="%.4g", padding=3)
        ax.margins(x=0.12)
        ax.invert_yaxis()
    ax.set_xlabel("message bytes, each message once (MB)")
    ax.set_ylabel("message kind")
    ax.set_title(summary.get("name", Path(run_dir).name))
    return fig


def plot_personalisation(run_dir: Path, summary: dict[str, Any]) -> Figure | None:
    """Grouped bars per edge, global model vs personalised (global + adapter) on the
    edge's held-out samples, one panel per metric of ``summary["personalisation"]``;
    ``None`` if the run has no such entries."""
    entries = {e: v for e, v in summary.get("personalisation", {}).items() if v["global"]}
    if not entries:
        return None
    metrics = list(dict.fromkeys(k for v in entries.values() for k in v["global"]))
    fig, axes = plt.subplots(1, len(metrics), squeeze=False, figsize=(3.5 * len(metrics), 3.5),
                             layout="constrained")  # fmt: skip
    x = range(len(entries))
    for ax, metric in zip(axes[0], metrics, strict=True):
        for shift, which in ((-0.2, "global"), (0.2, "personalised")):
            values = [v[which].get(metric, float("nan")) for v in entries.values()]
            ax.bar([i + shift for i in x], values, width=0.4, label=which)
        ax.set_xticks(list(x), list(entries))
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    axes[0, 0].legend(fontsize="small", loc="lower left")
    fig.suptitle(f"{summary.get('name', Path(run_dir).name)}: edge test sets")
    return fig


def read_metrics(run_dir: Path) -> pd.DataFrame:
    """``metrics.csv`` with nodes and metric names as text."""
    return pd.read_csv(
        Path(run_dir) / "metrics.csv", dtype={"node": str, "metric": str}, keep_default_na=False
    ).astype({"t": "float64", "value": "float64"})


def energy_and_score(metrics: pd.DataFrame, tier: str | None = None) -> pd.DataFrame | None:
    """Per round instant, the cumulative energy (J: of every node, or of ``tier``'s) and
    the headline score recorded with it (``energy_j``, ``score``, ``t``; the score's name
    in ``attrs["score"]``); ``None`` if the run has no energy rows or no score at them."""
    column = "energy_j" if tier is None else f"energy_j.{tier}"
    energy = metrics[metrics["metric"] == column]
    for score in SCORES:
        scored = metrics[metrics["metric"] == score]
        joined = energy.merge(scored, on=["t", "node"], suffixes=("_e", "_s"))
        if not joined.empty:
            out = pd.DataFrame(
                {"t": joined["t"], "energy_j": joined["value_e"], "score": joined["value_s"]}
            )
            out.attrs["score"] = score
            return out
    return None


def plot_energy_by_tier(run_dir: Path, summary: dict[str, Any]) -> Figure | None:
    """Cumulative energy (J) of each tier against virtual time (s), from the energy rows
    of ``metrics.csv``, exact at each marker; ``None`` if the run has none."""
    metrics = read_metrics(run_dir)
    rows = metrics[metrics["metric"].str.startswith("energy_j.")]
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for i, (metric, group) in enumerate(rows.groupby("metric", sort=False)):
        if group["value"].max() <= 0:
            continue
        style = LINESTYLES[i % len(LINESTYLES)]
        tier = metric.split(".", 1)[1]
        ax.plot([0.0, *group["t"]], [0.0, *group["value"]], marker="o", markersize=3,
                linestyle=style, label=tier)  # fmt: skip
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("energy drawn since the start (J)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(title="tier", loc="upper left")
    ax.set_title(summary.get("name", Path(run_dir).name))
    return fig


def plot_accuracy_vs_energy(run_dir: Path, summary: dict[str, Any]) -> Figure | None:
    """The headline score of each round's model against the energy every node drew
    until then (J), and that of the end devices alone; ``None`` without both."""
    metrics = read_metrics(run_dir)
    every, ends = energy_and_score(metrics), energy_and_score(metrics, "end")
    if every is None or ends is None:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    ax.plot(every["energy_j"], every["score"], marker="o", markersize=3, label="all nodes")
    ax.plot(ends["energy_j"], ends["score"], marker="s", markersize=3, linestyle="--",
            label="end devices")  # fmt: skip
    ax.set_xlabel("energy drawn until the model was scored (J)")
    ax.set_ylabel(METRIC_LABELS.get(every.attrs["score"], every.attrs["score"]))
    ax.set_xlim(left=0)
    ax.legend(loc="lower right")
    ax.set_title(summary.get("name", Path(run_dir).name))
    return fig


def write_run_figures(run_dir: Path, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Write the figures of ``run_dir`` into ``run_dir/figures/`` and return their paths.

    Order: ``bytes_per_tier``, ``accuracy_vs_time`` (only if ``metrics.csv`` has an
    accuracy metric), ``bytes_per_kind``, ``personalisation`` (only if the summary has
    edges with adapters that evaluated), ``energy_by_tier`` (only if nodes draw power)
    and ``accuracy_vs_energy`` (that, and a scored model), each in ``formats``.
    ``ValueError`` if the run has no ``summary.json``.
    """
    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    out = run_dir / "figures"
    out.mkdir(exist_ok=True)
    plots = {
        "bytes_per_tier": plot_bytes_per_tier,
        "accuracy_vs_time": plot_accuracy_vs_time,
        "bytes_per_kind": plot_bytes_per_kind,
        "personalisation": plot_personalisation,
        "energy_by_tier": plot_energy_by_tier,
        "accuracy_vs_energy": plot_accuracy_vs_energy,
    }
    written = []
    for name, plot in plots.items():
        fig = plot(run_dir, summary)
        if fig is not None:
            written.append(save(fig, out / name, formats))
    return written
