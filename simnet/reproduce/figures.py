"""Figures of the reproductions."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def communication_figure(comm: pd.DataFrame, stem: Path) -> list[Path]:
    """ML-ECS's Fig. 3 from our messages: parameters a device uploads per round, by method
    (one panel per task, log scale), each bar labelled with its ratio to ML-ECS and the
    paper's where it gives one. Written as ``stem.png`` and ``stem.pdf``."""
    tasks = list(dict.fromkeys(comm.task))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        part = comm[comm.task == task].dropna(subset=["uploaded_per_round"])
        part = part[part.uploaded_per_round > 0]
        bars = ax.bar(part.method, part.uploaded_per_round, color="tab:blue")
        for bar, ratio, paper in zip(bars, part.ratio_to_ml_ecs, part.paper_ratio, strict=True):
            label = f"{ratio:.2g}×" + ("" if pd.isna(paper) else f"\n(paper {paper:g}×)")
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)  # fmt: skip
        ax.set_yscale("log")
        ax.set_title(f"{task}: uploads per device and round (ρ = 0.8)")
        ax.set_ylabel("tensor elements uploaded")
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


def personalisation_figure(gains: pd.DataFrame, stem: Path) -> list[Path]:
    """Each edge's base model vs personalised model (mean over seeds), the run figure
    :func:`simnet.report.figures.plot_personalisation` over a reproduction's
    ``personalisation`` table; ``stem.png`` and ``stem.pdf`` (none without entries)."""
    from simnet.report.figures import plot_personalisation, save

    entries: dict[str, dict[str, dict[str, float]]] = {}
    for row in gains.to_dict("records"):
        entry = entries.setdefault(row["edge"], {"global": {}, "personalised": {}})
        for which, scores in entry.items():
            scores[row["metric"]] = float("nan") if row[which] is None else row[which]
    summary = {"name": "Mega-CE² (mean over seeds)", "personalisation": entries}
    fig = plot_personalisation(stem.parent, summary)
    if fig is None:
        return []
    save(fig, stem, ("png", "pdf"))
    return [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
