"""The run directory: ``scenario.yaml``, ``messages.csv``, ``metrics.csv``, ``summary.json``.

Every file is written to a temporary name in the same directory and renamed into place,
so a reader never sees a truncated file. ``summary.json`` is written last and says
whether the run finished: a run directory is complete if and only if it holds
``summary.json`` with ``"complete": true`` (an incomplete run's summary has
``"complete": false`` and a one-line ``incomplete_reason``; a summary without the key,
or no summary at all, is not complete). :func:`clear_run` removes a run directory's own
files before it is written again.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from simnet.config.yaml_file import dump_yaml
from simnet.engine.network import Transfer
from simnet.engine.world import MetricRow

MESSAGE_COLUMNS = [
    "id",
    "src",
    "dst",
    "kind",
    "bytes",
    "t_send",
    "t_recv",
    "status",
    "t_drop",
    "route",
    "phase",
    "carried",
]
METRIC_COLUMNS = ["t", "node", "metric", "value"]
COMPLETE_MARKER = "summary.json"
RUN_FILES = ("scenario.yaml", "messages.csv", "metrics.csv", "generations.csv", COMPLETE_MARKER)
"""The files a run writes (``generations.csv`` only for a generation task), ``summary.json``
last."""
FIGURES = "figures"


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _time(value: float | None) -> str:
    """Virtual seconds as the shortest text that reads back to the same float."""
    return "" if value is None else repr(float(value))


def csv_text(columns: list[str], rows: Iterable[list[Any]]) -> str:
    """A CSV table: a header of ``columns``, then ``rows`` (``\\n`` line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def messages_csv(transfers: Iterable[Transfer]) -> str:
    """``messages.csv`` text, one row per message in send order."""
    return csv_text(
        MESSAGE_COLUMNS,
        (
            [
                t.id, t.src, t.dst, t.kind, t.size, _time(t.t_send), _time(t.t_recv),
                t.status, _time(t.t_drop), ">".join(t.path), t.phase, t.carried,
            ]
            for t in transfers
        ),
    )  # fmt: skip


def metrics_csv(rows: Iterable[MetricRow]) -> str:
    """``metrics.csv`` text (tidy: ``t,node,metric,value``)."""
    return csv_text(METRIC_COLUMNS, ([_time(r.t), r.node, r.metric, repr(r.value)] for r in rows))


def load_summary(run_dir: Path) -> dict[str, Any] | None:
    """``summary.json`` of ``run_dir``, or ``None`` if it is missing or unreadable."""
    try:
        summary = json.loads((Path(run_dir) / COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def is_complete(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a finished run: its ``summary.json`` says
    ``"complete": true``."""
    summary = load_summary(run_dir)
    return summary is not None and summary.get("complete") is True


def clear_run(run_dir: Path) -> None:
    """Remove the files a run writes in ``run_dir`` (:data:`RUN_FILES`, temporary files
    left by an interrupted write, ``figures/``), ``summary.json`` first; other files and
    the directory itself stay."""
    run_dir = Path(run_dir)
    for name in reversed(RUN_FILES):
        (run_dir / name).unlink(missing_ok=True)
        for tmp in run_dir.glob(f".{name}.*"):
            tmp.unlink(missing_ok=True)
    if (run_dir / FIGURES).is_dir():
        shutil.rmtree(run_dir / FIGURES)


def write_run(
    run_dir: Path,
    scenario: dict[str, Any],
    transfers: list[Transfer],
    metrics: list[MetricRow],
    summary: dict[str, Any],
    tables: dict[str, str] | None = None,
) -> None:
    """Write a whole run directory, the workload's own ``tables`` (file name → text)
    included, ``summary.json`` last."""
    run_dir = Path(run_dir)
    atomic_write(run_dir / "scenario.yaml", dump_yaml(scenario))
    atomic_write(run_dir / "messages.csv", messages_csv(transfers))
    atomic_write(run_dir / "metrics.csv", metrics_csv(metrics))
    for name, text in (tables or {}).items():
        atomic_write(run_dir / name, text)
    atomic_write(run_dir / COMPLETE_MARKER, json.dumps(summary, indent=2) + "\n")
