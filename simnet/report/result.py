"""A run directory as Python objects: :class:`Result` (one run), :class:`SweepResult`.

The frames hold exactly the rows of the CSV files, with typed columns: ``messages``
``id``, ``bytes`` and ``carried`` as ``int64``; ``t_send``, ``t_recv`` and ``t_drop`` as
``float64`` in virtual seconds (``NaN`` where the file has no value: a message not
delivered has no ``t_recv``); the other columns as text (``""`` where empty). ``metrics``
``t`` and ``value`` as ``float64``, ``node`` and ``metric`` as text. Floats read back
bit-exact (the files hold the shortest text of each float, which pandas' default
parser reads back exactly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from simnet.config.yaml_file import load_yaml
from simnet.errors import InputError
from simnet.report.records import COMPLETE_MARKER, FIGURES, load_summary

INTEGER_COLUMNS = ("id", "bytes", "carried")
FLOAT_COLUMNS = ("t_send", "t_recv", "t_drop", "t", "value")


def read_table(path: Path) -> pd.DataFrame:
    """A run's CSV file with typed columns (see the module doc)."""
    header = pd.read_csv(path, nrows=0).columns
    floats = [c for c in header if c in FLOAT_COLUMNS]
    dtypes: dict[str, Any] = {c: str for c in header if c not in floats}
    dtypes.update({c: "float64" for c in floats})
    table = pd.read_csv(
        path, dtype=dtypes, keep_default_na=False, na_values={c: [""] for c in floats},
)  # fmt: skip
    for column in INTEGER_COLUMNS:
        if column in table.columns:
            table[column] = table[column].astype("int64")
    return table


@dataclass
class Result:
    """One run: ``summary`` (``summary.json``), ``messages`` and ``metrics`` (the CSV
    files as frames), ``scenario`` (``scenario.yaml``: the scenario as run, which
    :func:`simnet.run` takes back; read when first asked for, as a large topology inline
    takes seconds to parse) and ``run_dir``."""

    run_dir: Path
    summary: dict[str, Any]
    messages: pd.DataFrame = field(repr=False)
    metrics: pd.DataFrame = field(repr=False)

    @cached_property
    def scenario(self) -> dict[str, Any]:
        """The scenario as run (``scenario.yaml``)."""
        return load_yaml((self.run_dir / "scenario.yaml").read_text(encoding="utf-8"))

    @property
    def complete(self) -> bool:
        """Whether the workload finished (else ``summary["incomplete_reason"]`` says why)."""
        return self.summary.get("complete") is True

    def metric(self, name: str, node: str | None = None) -> pd.DataFrame:
        """The ``metrics`` rows of ``name`` (at ``node``), as ``t, node, value``."""
        rows = self.metrics[self.metrics["metric"] == name]
        if node is not None:
            rows = rows[rows["node"] == node]
        return rows[["t", "node", "value"]].reset_index(drop=True)


def load_run(path: Path | str) -> Result:
    """The run in directory ``path`` (:class:`InputError` if it holds no run)."""
    run_dir = Path(path)
    summary = load_summary(run_dir)
    if summary is None:
        raise InputError(str(run_dir / COMPLETE_MARKER), "", "missing or not a JSON object")
    for name in ("scenario.yaml", "messages.csv", "metrics.csv"):
        if not (run_dir / name).is_file():
            raise InputError(str(run_dir / name), "", "missing: not a run directory")
    messages = read_table(run_dir / "messages.csv")
    metrics = read_table(run_dir / "metrics.csv")
    return Result(run_dir, summary, messages, metrics)


@dataclass
class SweepResult:
    """A sweep: ``results`` (``results.csv``: one row per point) and its directory;
    :attr:`points` gives each point's :class:`Result`."""

    sweep_dir: Path
    results: pd.DataFrame = field(repr=False)

    @property
    def points(self) -> dict[str, Result]:
        """Each point's run by its directory name, in point order (points without a
        run directory, e.g. of an interrupted sweep, left out)."""
        dirs = [self.sweep_dir / str(run) for run in self.results["run"]]
        return {d.name: load_run(d) for d in dirs if (d / COMPLETE_MARKER).is_file()}

    @property
    def figures(self) -> list[Path]:
        """The sweep's figures (their PNG files), by name."""
        return sorted((self.sweep_dir / FIGURES).glob("*.png"))


def load_sweep_result(path: Path | str) -> SweepResult:
    """The sweep in directory ``path`` (:class:`InputError` without ``results.csv``)."""
    sweep_dir = Path(path)
    table = sweep_dir / "results.csv"
    if not table.is_file():
        raise InputError(str(table), "", "missing: not a sweep directory")
    return SweepResult(sweep_dir, pd.read_csv(table))
