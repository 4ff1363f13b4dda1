"""``simnet reproduce ml-ecs``: ML-ECS's Table 1, Table 2 and Fig. 3, ours beside the paper's.

Table 1: tasks ``vast`` (``scenarios/mlecs_vast.yaml``) and ``fall``
(``scenarios/mlecs_urfall.yaml``), 3 devices as in the paper, ρ ∈ {0.5, 0.7, 0.8} ×
:data:`METHODS` × seeds. Table 2: ML-ECS with 3, 5, 10 and 20 devices at ρ = 0.8. Fig. 3:
what each method's messages carried, from Table 1's ρ = 0.8 runs. Every block is a sweep
(:mod:`simnet.sweeps`) in its own directory, so a killed reproduction resumes where it
stopped. The paper's numbers come from ``data/ml_ecs.yaml``, transcribed once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pandas as pd

from simnet.reproduce.common import (
    Block,
    Claim,
    Reproduction,
    Settings,
    at_least,
    paper_data,
    run_blocks,
    seed_stats,
    side_by_side,
)

METHODS = ("standalone", "multi_fedavg", "fedmllm", "fedilora", "co_plms", "ml_ecs")
"""Table 1's methods, in the paper's order."""
RHOS = (0.5, 0.7, 0.8)
DEVICES = (3, 5, 10, 20)
BASES = {"vast": "mlecs_vast.yaml", "fall": "mlecs_urfall.yaml"}
METRICS = {
    "vast": {
        "avg_bs": "device_bertscore.mean", "best_bs": "device_bertscore.best",
        "worst_bs": "device_bertscore.worst", "avg_rls": "device_rouge_lsum.mean",
        "best_rls": "device_rouge_lsum.best", "worst_rls": "device_rouge_lsum.worst",
        "server_bs": "server.bertscore", "server_rls": "server.rouge_lsum",
    },
    "fall": {
        "avg_f1": "device_f1_macro.mean", "best_f1": "device_f1_macro.best",
        "worst_f1": "device_f1_macro.worst", "server_f1": "server.f1_macro",
    },
}  # fmt: skip
"""Each table metric's column in a sweep's ``results.csv`` (flattened ``summary.json``)."""
TABLE1_KEYS = ["workload.rho", "workload.method"]
"""The swept keys of a Table 1 sweep's ``results.csv`` that name a cell."""
HEADLINE = {"vast": ("avg_bs", "avg_rls"), "fall": ("avg_f1",)}
"""The client metrics the paper's claims are about."""
QUICK = [
    ("workload.rounds", 2),
    ("workload.model.steps", 10),
]
"""Overrides of ``--quick`` (1 seed, 2 rounds of 10 steps per stage)."""
SECONDS_PER_RUN = {True: 25.0, False: 90.0}
"""Rough wall time of one run on 2 cores (quick, full), for the estimate printed first."""


def implemented() -> tuple[str, ...]:
    """The methods of :data:`METHODS` that the ``mlecs`` workload has (the others' rows
    keep ``ours`` empty)."""
    from simnet.workloads.mlecs import MlecsConfig

    known = get_args(MlecsConfig.model_fields["method"].annotation)
    return tuple(m for m in METHODS if m in known)


def blocks(settings: Settings) -> list[Block]:
    """The sweeps: Table 1 per task, Table 2 per task."""
    fixed = [*(QUICK if settings.quick else []), *settings.overrides]
    seeds = list(range(settings.seeds))
    methods = list(implemented())
    out = []
    for task, base in BASES.items():
        out.append(Block(
            f"table1-{task}", base, [("topology.leaves", 3), *fixed],
            {"workload.rho": list(RHOS), "workload.method": methods, "seed": seeds},
        ))  # fmt: skip
    for task, base in BASES.items():
        out.append(Block(
            f"table2-{task}", base, [("workload.rho", 0.8), ("workload.method", "ml_ecs"), *fixed],
            {"topology.leaves": list(DEVICES), "seed": seeds},
        ))  # fmt: skip
    return out


def table1(results: dict[str, pd.DataFrame], paper: dict[str, Any]) -> pd.DataFrame:
    """``task, rho, method, metric, ours, ours_std, paper`` (``ours`` empty where no run
    has the number, ``paper`` where the paper has "-")."""
    rows = []
    for task, columns in METRICS.items():
        stats = seed_stats(results[f"table1-{task}"], TABLE1_KEYS, list(columns.values()))
        for rho in RHOS:
            for method in METHODS:
                printed = paper["table1"]["rows"][rho][method][task]
                for (metric, column), value in zip(columns.items(), printed, strict=True):
                    mean, std = stats.get((rho, method, column), (None, None))
                    rows.append([task, rho, method, metric, mean, std, value])
    return pd.DataFrame(rows, columns=["task", "rho", "method", "metric", "ours", "ours_std",
                                       "paper"])  # fmt: skip


def table2(results: dict[str, pd.DataFrame], paper: dict[str, Any]) -> pd.DataFrame:
    """``task, devices, metric, ours, paper``."""
    rows = []
    for task, columns in METRICS.items():
        stats = seed_stats(results[f"table2-{task}"], ["topology.leaves"], list(columns.values()))
        for metric, column in columns.items():
            for k, devices in enumerate(DEVICES):
                mean, _ = stats.get((devices, column), (None, None))
                rows.append([task, devices, metric, mean, paper["table2"]["rows"][task][metric][k]])
    return pd.DataFrame(rows, columns=["task", "devices", "metric", "ours", "paper"])


def communication(results: dict[str, pd.DataFrame], paper: dict[str, Any]) -> pd.DataFrame:
    """Fig. 3's data: per task and method at ρ = 0.8, the bytes sent (mean over seeds),
    the parameters a device uploads per round and their share of its model, and the
    ratio of each to ML-ECS's, beside the paper's ratio."""
    rows = []
    columns = ["bytes_total", "uploaded_parameters_per_device_round.mean",
               "transmitted_share.mean"]  # fmt: skip
    for task in METRICS:
        stats = seed_stats(results[f"table1-{task}"], TABLE1_KEYS, columns)
        base = stats.get((0.8, "ml_ecs", columns[1]), (None, None))[0]
        for method in METHODS:
            sent, uploaded, share = (stats.get((0.8, method, c), (None, None))[0] for c in columns)
            ratio = uploaded / base if uploaded is not None and base else None
            rows.append([task, method, sent, uploaded, share, ratio,
                         paper["fig3"]["ratios"].get(method)])  # fmt: skip
    names = ["task", "method", "bytes_total", "uploaded_per_round", "transmitted_share",
             "ratio_to_ml_ecs", "paper_ratio"]  # fmt: skip
    return pd.DataFrame(rows, columns=names)


def claims(t1: pd.DataFrame, t2: pd.DataFrame, comm: pd.DataFrame) -> list[Claim]:
    """The paper's claims, decided on our numbers."""
    out = []
    for task, metrics in HEADLINE.items():
        rows = t1[t1.task == task]
        for metric in metrics:
            mine = rows[rows.metric == metric]
            ours = mine[mine.method == "ml_ecs"].set_index("rho").ours
            for other in ("standalone", *[m for m in METHODS if m not in ("standalone", "ml_ecs")]):
                theirs = mine[mine.method == other].set_index("rho").ours
                out.append(at_least(f"{task}: ML-ECS {metric} ≥ {other} at every ρ", ours, theirs))
        server = rows[rows.metric.str.startswith("server_")]
        for metric in sorted(set(server.metric)):
            part = server[server.metric == metric]
            ours = part[part.method == "ml_ecs"].set_index("rho").ours
            theirs = part[part.method == "co_plms"].set_index("rho").ours
            out.append(at_least(f"{task}: ML-ECS {metric} ≥ Co-PLMs at every ρ", ours, theirs))
    for task in METRICS:
        part = comm[comm.task == task].set_index("method")
        up = part.uploaded_per_round.drop("standalone", errors="ignore").dropna()  # sends none
        if len(up) < 2:
            continue
        lowest = up.idxmin()
        out.append(Claim(f"{task}: ML-ECS uploads the fewest parameters per round",
                         lowest == "ml_ecs", f"lowest: {lowest}"))  # fmt: skip
        ratios = ", ".join(f"{m} {r:.2f}×" for m, r in part.ratio_to_ml_ecs.items())
        if {"fedmllm", "fedilora", "co_plms", "multi_fedavg"} <= set(up.index):
            order = up["fedmllm"] < up["fedilora"] < min(up["co_plms"], up["multi_fedavg"])
            out.append(Claim(f"{task}: FedMLLM < FediLoRA < Co-PLMs, Multi-FedAvg (uploads)",
                             bool(order), f"ratios to ML-ECS: {ratios}"))  # fmt: skip
    for task, metrics in HEADLINE.items():
        for metric in metrics:
            series = t2[(t2.task == task) & (t2.metric == metric)].set_index("devices").ours
            if {DEVICES[0], DEVICES[-1]} - set(series.dropna().index):
                continue
            first, last = series[DEVICES[0]], series[DEVICES[-1]]
            drop = (first - last) / abs(first) if first else None  # scores may be < 0 (BS)
            holds = None if drop is None else bool(drop < 0.05)
            detail = "the 3-device score is 0" if drop is None else f"{drop:+.1%} lower"
            out.append(Claim(f"{task}: {metric} drops < 5 % from 3 to 20 devices", holds, detail))
    return out


def reproduce(
    out: Path, settings: Settings, workers: int = 1, backend: str = "pool",
    progress: bool = True,
) -> Reproduction:  # fmt: skip
    """Run (or resume) every block into ``out``; write ``table1.csv``, ``table2.csv``,
    ``fig3.csv``, ``fig3.png``/``.pdf`` and ``report.md``; return them."""
    paper = paper_data("ml_ecs")
    results = run_blocks(out, blocks(settings), workers, backend, progress,
                         SECONDS_PER_RUN[settings.quick])  # fmt: skip
    t1, t2, comm = table1(results, paper), table2(results, paper), communication(results, paper)
    found = claims(t1, t2, comm)
    from simnet.reproduce.figures import communication_figure

    figures = communication_figure(comm, out / "fig3")
    tables = {"table1.csv": t1, "table2.csv": t2, "fig3.csv": comm}
    views = {
        **{f"Table 1, {task} (ours / paper)": side_by_side(t1[t1.task == task], ["rho", "method"])
           for task in METRICS},
        "Table 2 (ours / paper), by number of devices": side_by_side(
            t2, ["task", "metric"], "devices"
        ),
        "Fig. 3 (communication at ρ = 0.8)": comm,
    }  # fmt: skip
    sources = [
        paper["table1"]["source"],
        paper["table2"]["source"],
        paper["table2"]["note"],
        paper["fig3"]["source"],
    ]
    missing = [m for m in METHODS if m not in implemented()]
    if missing:
        sources = [*sources, f"Not implemented in this simnet (ours empty): {', '.join(missing)}"]
    return Reproduction.write(out, "ML-ECS", tables, found, figures, views, sources)
