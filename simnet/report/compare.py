"""``simnet compare SIM_RUN LIVE_RUN``: a simulated run against a live run of the same scenario.

Both are run directories (see :mod:`simnet.report.records`); a live run's times are wall-clock
seconds since its start. Messages are joined on ``id`` for traffic workloads (a transfer's
index in both modes), otherwise on ``(src, dst, kind, k)``, ``k`` counting the messages
of that ``(src, dst, kind)`` in ``t_send`` order from 0. Only messages delivered in both
runs are compared; the others are counted. Transfer time = ``t_recv − t_send`` (s);
relative error = ``(live − sim) / sim``, signed (its absolute value in the summaries).
Round times are the times of the cloud's ``version`` rows of ``metrics.csv``; final
metrics the numeric top-level and ``cloud`` values of both ``summary.json`` files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from simnet.engine.network import DELIVERED  # noqa: E402
from simnet.errors import InputError  # noqa: E402
from simnet.report.figures import node_tiers, read_messages, save  # noqa: E402
from simnet.report.records import atomic_write, load_summary  # noqa: E402

SIZE_CLASSES = ("<10 kB", "10 kB–1 MB", "≥1 MB")
"""Message size classes (1 kB = 1000 B, 1 MB = 10⁶ B), smallest first."""
KB, MB = 1_000, 1_000_000
JOIN_COLUMNS = {"traffic": ["id"]}
"""Join keys per workload; others join on ``src, dst, kind, k``."""
ORDINAL_JOIN = ["src", "dst", "kind", "k"]
NEEDED_COLUMNS = ("id", "src", "dst", "kind", "bytes", "t_send", "t_recv", "status")


@dataclass
class Comparison:
    """What :func:`compare_runs` found.

    ``messages``: one row per message delivered in both runs (the ``compare.csv``
    columns; times in s). ``counts``: ``compared``, ``sim_only`` / ``live_only``
    (no partner in the other run), ``sim_undelivered`` / ``live_undelivered`` (joined,
    but not delivered in that run). ``by_class``: per size class and kind, then ``all``:
    ``n``, ``median_abs_rel_error``, ``p95_abs_rel_error``, ``median_sim_s``,
    ``median_live_s``. ``rounds``: per version present in both, ``sim_t`` / ``live_t``
    (s) and the intervals since the previous such version, ``sim_interval_s`` /
    ``live_interval_s`` (NaN for the first), with their ``rel_error``; ``round_node``
    the node whose ``version`` rows they are (None: no learning rounds). ``finals``:
    ``metric``, ``sim``, ``live``, ``rel_error``.
    """

    sim: Path
    live: Path
    name: str
    workload: str
    modes: tuple[str, str]
    join: list[str]
    messages: pd.DataFrame
    counts: dict[str, int]
    by_class: pd.DataFrame
    round_node: str | None
    rounds: pd.DataFrame
    finals: pd.DataFrame
    csv: Path
    png: Path


def compare_runs(sim: Path, live: Path, out: Path) -> Comparison:
    """Compare run directories ``sim`` and ``live``; write ``out/compare.csv`` and
    ``out/compare.png``. :class:`InputError` for a directory that is not a run, runs of
    different scenarios, or no message delivered in both."""
    sim, live, out = Path(sim), Path(live), Path(out)
    sim_summary, live_summary = _summary(sim), _summary(live)
    for key in ("name", "workload"):
        if sim_summary.get(key) != live_summary.get(key):
            raise InputError(
                str(live / "summary.json"),
                key,
                f"{live_summary.get(key)!r} differs from {sim_summary.get(key)!r} of "
                f"{sim / 'summary.json'}: not the same scenario",
            )
    workload = str(sim_summary["workload"])
    join = JOIN_COLUMNS.get(workload, ORDINAL_JOIN)
    messages, counts = _join(_messages(sim), _messages(live), join)
    if messages.empty:
        raise InputError(
            str(live / "messages.csv"),
            "",
            f"no message delivered in both runs matches one of {sim / 'messages.csv'} "
            f"(joined on {', '.join(join)})",
        )
    round_node, rounds = _rounds(sim, live)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "compare.csv"
    atomic_write(csv_path, messages.to_csv(index=False, lineterminator="\n"))
    png = save(_scatter(messages, str(sim_summary["name"])), out / "compare")
    return Comparison(
        sim=sim,
        live=live,
        name=str(sim_summary["name"]),
        workload=workload,
        modes=(str(sim_summary.get("mode", "?")), str(live_summary.get("mode", "?"))),
        join=join,
        messages=messages,
        counts=counts,
        by_class=_by_class(messages),
        round_node=round_node,
        rounds=rounds,
        finals=_finals(sim_summary, live_summary),
        csv=csv_path,
        png=png,
    )


def _summary(run: Path) -> dict[str, Any]:
    if not run.is_dir():
        raise InputError(str(run), "", "not a directory")
    summary = load_summary(run)
    if summary is None:
        raise InputError(str(run / "summary.json"), "", "missing or not a JSON object")
    return summary


def _messages(run: Path) -> pd.DataFrame:
    """``messages.csv`` of ``run``, with ``k`` (the ordinal of each row in ``t_send``
    order among the messages of its ``src, dst, kind``)."""
    path = run / "messages.csv"
    if not path.is_file():
        raise InputError(str(path), "", "missing: not a run directory")
    try:
        messages = read_messages(run)
    except (ValueError, KeyError) as exc:
        raise InputError(str(path), "", f"unreadable ({exc})") from None
    missing = [c for c in NEEDED_COLUMNS if c not in messages]
    if missing:
        raise InputError(str(path), missing[0], "missing column")
    messages = messages.sort_values("t_send", kind="stable")
    messages["k"] = messages.groupby(["src", "dst", "kind"]).cumcount()
    return messages


def size_class(size: int) -> str:
    """The size class (:data:`SIZE_CLASSES`) of a message of ``size`` bytes."""
    return SIZE_CLASSES[0] if size < 10 * KB else SIZE_CLASSES[1 if size < MB else 2]


def _join(
    sim: pd.DataFrame, live: pd.DataFrame, join: list[str]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The messages delivered in both runs (``compare.csv`` rows) and the counts."""
    both = sim.merge(live, on=join, how="outer", suffixes=("_sim", "_live"), indicator=True)
    matched = both[both["_merge"] == "both"]
    sim_ok = matched["status_sim"] == DELIVERED
    live_ok = matched["status_live"] == DELIVERED
    counts = {
        "compared": int((sim_ok & live_ok).sum()),
        "sim_only": int((both["_merge"] == "left_only").sum()),
        "live_only": int((both["_merge"] == "right_only").sum()),
        "sim_undelivered": int((~sim_ok).sum()),
        "live_undelivered": int((~live_ok).sum()),
    }
    rows = matched[sim_ok & live_ok].sort_values("t_send_sim", kind="stable")

    def take(column: str) -> pd.Series:
        return rows[column] if column in join else rows[f"{column}_sim"]

    sim_s = rows["t_recv_sim"] - rows["t_send_sim"]
    live_s = rows["t_recv_live"] - rows["t_send_live"]
    key = join[-1]
    size = take("bytes").astype("int64")  # the outer join made it float
    table = pd.DataFrame(
        {
            key: rows[key],
            **{c: take(c) for c in ("src", "dst", "kind")},
            "bytes": size,
            "size_class": size.map(size_class),
            "sim_s": sim_s,
            "live_s": live_s,
            "rel_error": ((live_s - sim_s) / sim_s).where(sim_s > 0),
        }
    )
    return table.reset_index(drop=True), counts


def _abs_stats(errors: pd.Series) -> tuple[float, float]:
    """Median and 95th percentile of ``|errors|`` (NaN left out; NaN if none)."""
    values = errors.abs().dropna().to_numpy()
    if not values.size:
        return float("nan"), float("nan")
    return float(np.median(values)), float(np.percentile(values, 95))


def _by_class(messages: pd.DataFrame) -> pd.DataFrame:
    groups = [
        ((cls, kind), rows)
        for cls in SIZE_CLASSES
        for kind, rows in messages[messages["size_class"] == cls].groupby("kind")
    ]
    rows = []
    for (cls, kind), group in [*groups, (("all", "all"), messages)]:
        median, p95 = _abs_stats(group["rel_error"])
        rows.append(
            {"size_class": cls, "kind": kind, "n": len(group), "median_abs_rel_error": median,
             "p95_abs_rel_error": p95, "median_sim_s": float(group["sim_s"].median()),
             "median_live_s": float(group["live_s"].median())}
        )  # fmt: skip
    return pd.DataFrame(rows)


def _tiers(run: Path) -> dict[str, str]:
    """Node id → tier from ``run/scenario.yaml``; empty if it cannot be read."""
    try:
        return node_tiers(run)
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return {}


def _versions(run: Path, node: str | None = None) -> tuple[str | None, pd.Series]:
    """The node whose ``version`` rows are used (``node``, else the cloud tier's or the
    only one recording ``version``) and its first time (s) per version."""
    path = run / "metrics.csv"
    if not path.is_file():
        return node, pd.Series(dtype="float64")
    try:
        metrics = pd.read_csv(path, dtype={"node": str, "metric": str})
        rows = metrics[metrics["metric"] == "version"]
        rows = rows.assign(t=rows["t"].astype("float64"), value=rows["value"].astype(int))
    except (ValueError, KeyError) as exc:
        raise InputError(str(path), "", f"unreadable ({exc})") from None
    if node is None:
        nodes = list(dict.fromkeys(rows["node"]))
        if len(nodes) > 1:
            tiers = _tiers(run)
            nodes = [n for n in nodes if tiers.get(n) == "cloud"] or nodes
        node = nodes[0] if nodes else None
    rows = rows[rows["node"] == node]
    return node, rows.groupby("value")["t"].min().sort_index()


def _rounds(sim: Path, live: Path) -> tuple[str | None, pd.DataFrame]:
    node, sim_t = _versions(sim)
    _, live_t = _versions(live, node)
    times = pd.DataFrame({"sim_t": sim_t, "live_t": live_t}).dropna()
    sim_dt, live_dt = times["sim_t"].diff(), times["live_t"].diff()
    table = times.assign(
        sim_interval_s=sim_dt,
        live_interval_s=live_dt,
        rel_error=(live_dt - sim_dt) / sim_dt.where(sim_dt > 0),
    )
    return node, table.rename_axis("version").reset_index()


def _numbers(summary: dict[str, Any]) -> dict[str, float]:
    """Numeric top-level values of a summary and those under ``cloud`` (``cloud.KEY``)."""
    leaves = {**summary, **{f"cloud.{k}": v for k, v in (summary.get("cloud") or {}).items()}}
    return {
        k: float(v)
        for k, v in leaves.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _finals(sim: dict[str, Any], live: dict[str, Any]) -> pd.DataFrame:
    ours, theirs = _numbers(sim), _numbers(live)
    table = pd.DataFrame(
        [(k, v, theirs[k]) for k, v in ours.items() if k in theirs],
        columns=["metric", "sim", "live"],
    )
    table["rel_error"] = (table["live"] - table["sim"]) / table["sim"].where(table["sim"] != 0)
    return table


def _scatter(messages: pd.DataFrame, name: str) -> plt.Figure:
    """Live against simulated transfer time (s), log-log, one colour per size class."""
    fig, ax = plt.subplots(figsize=(5.5, 5), layout="constrained")
    shown = messages[(messages["sim_s"] > 0) & (messages["live_s"] > 0)]
    for cls in SIZE_CLASSES:
        rows = shown[shown["size_class"] == cls]
        if not rows.empty:
            ax.scatter(rows["sim_s"], rows["live_s"], s=14, alpha=0.7, label=f"{cls} ({len(rows)})")
    if not shown.empty:
        lo = min(shown["sim_s"].min(), shown["live_s"].min())
        hi = max(shown["sim_s"].max(), shown["live_s"].max())
        ax.plot([lo, hi], [lo, hi], color="0.4", linestyle="--", linewidth=1, label="y = x")
        ax.legend(title="message size", fontsize="small")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("simulated transfer time (virtual s)")
    ax.set_ylabel("live transfer time (wall-clock s)")
    ax.set_title(name)
    return fig


def _percent(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:+.1%}"


def _number(value: float) -> str:
    """Whole numbers with thousands separators, others to 6 significant digits."""
    return f"{value:,.0f}" if value.is_integer() else f"{value:.6g}"


def _seconds(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.4g}"


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Aligned text columns: the first ``left`` left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [header, *rows]
    ]


def format_comparison(c: Comparison) -> str:
    """A readable report: counts, transfer time per size class and kind, round times,
    final metrics side by side, and the files written."""
    n = c.counts
    lines = [
        f"scenario {c.name} ({c.workload}); messages joined on {', '.join(c.join)}",
        f"sim:  {c.sim} (mode {c.modes[0]})",
        f"live: {c.live} (mode {c.modes[1]})",
        f"messages: {n['compared']} compared; unmatched: {n['sim_only']} sim, "
        f"{n['live_only']} live; undelivered: {n['sim_undelivered']} sim, "
        f"{n['live_undelivered']} live",
        "",
        "transfer time (s) per size class and kind; error = (live - sim) / sim",
    ]
    lines += _table(
        ["size class", "kind", "n", "median |err|", "p95 |err|", "median sim s", "median live s"],
        [
            [r.size_class, r.kind, str(r.n), _percent(r.median_abs_rel_error).lstrip("+"),
             _percent(r.p95_abs_rel_error).lstrip("+"), _seconds(r.median_sim_s),
             _seconds(r.median_live_s)]
            for r in c.by_class.itertuples()
        ],
        left=2,
    )  # fmt: skip
    if not c.rounds.empty:
        median, p95 = _abs_stats(c.rounds["rel_error"])
        lines += ["", f"round times (s): version rows of {c.round_node}"]
        lines += _table(
            ["version", "sim t", "live t", "sim interval", "live interval", "error"],
            [
                [str(r.version), _seconds(r.sim_t), _seconds(r.live_t),
                 _seconds(r.sim_interval_s), _seconds(r.live_interval_s), _percent(r.rel_error)]
                for r in c.rounds.itertuples()
            ],
        )  # fmt: skip
        lines.append(
            f"interval |err|: median {_percent(median).lstrip('+')}, "
            f"p95 {_percent(p95).lstrip('+')}"
        )
    if not c.finals.empty:
        lines += ["", "final metrics (virtual_time_s: virtual s in sim, wall-clock s live)"]
        lines += _table(
            ["metric", "sim", "live", "error"],
            [
                [r.metric, _number(r.sim), _number(r.live), _percent(r.rel_error)]
                for r in c.finals.itertuples()
            ],
        )
    lines += ["", f"table {c.csv}; figure {c.png}"]
    return "\n".join(lines)
