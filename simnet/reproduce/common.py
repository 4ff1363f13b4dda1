"""What every paper's reproduction shares: blocks of runs as resumable sweeps, the paper's
transcribed numbers, statistics over seeds, claims decided on our numbers, and the
output directory (CSV tables, figures, ``report.md``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

import simnet
from simnet.config.yaml_file import dump_yaml, load_yaml
from simnet.errors import InputError
from simnet.report.records import atomic_write

DATA = Path(__file__).resolve().parent / "data"
SCENARIOS = Path(simnet.__file__).resolve().parents[1] / "scenarios"
"""The repository's shipped scenarios: a reproduction's bases (a source checkout)."""


@dataclass(frozen=True)
class Settings:
    """What to run: ``seeds`` per point, ``quick`` settings, extra ``overrides`` for
    every run (``(dotted key, value)``)."""

    seeds: int = 5
    quick: bool = False
    overrides: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Block:
    """One sweep of a reproduction: ``base`` (a file of :data:`SCENARIOS`), overrides
    ``fixed`` for every point and the ``grid`` of swept values (dotted keys)."""

    name: str
    base: str
    fixed: Sequence[tuple[str, Any]]
    grid: dict[str, list[Any]]

    @property
    def runs(self) -> int:
        return math.prod(len(v) for v in self.grid.values())


@dataclass(frozen=True)
class Claim:
    """One of the paper's claims and whether our numbers bear it out (``None``: they
    cannot say: a number is missing)."""

    text: str
    holds: bool | None
    detail: str = ""

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "no", None: "n/a"}[self.holds]


def paper_data(name: str) -> dict[str, Any]:
    """The paper's numbers, transcribed once in ``data/{name}.yaml``."""
    return load_yaml((DATA / f"{name}.yaml").read_text(encoding="utf-8"))


def sweep_file(out: Path, block: Block) -> Path:
    """Write ``block`` as a sweep file ``out/sweeps/{name}.yaml`` (rerunnable with
    ``simnet sweep``) and return its path."""
    base = SCENARIOS / block.base
    if not base.is_file():
        raise InputError(str(base), "base", "scenario not found (reproduce needs the "
                         "repository's scenarios/ beside the package)")  # fmt: skip
    body = {"base": str(base), "set": dict(block.fixed), "grid": block.grid}
    path = out / "sweeps" / f"{block.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, dump_yaml(body))
    return path


def run_blocks(
    out: Path, blocks: Sequence[Block], workers: int, backend: str, progress: bool,
    seconds_per_run: float,
) -> dict[str, pd.DataFrame]:  # fmt: skip
    """Run every block's sweep into ``out/{name}`` (finished points are reused, so a
    killed reproduction resumes) and return each block's ``results.csv`` table. Says
    first how many runs there are and roughly how long they take."""
    from simnet.sweeps import load_sweep, reusable, run_sweep

    sweeps = [(b, load_sweep(sweep_file(out, b))) for b in blocks]
    total = sum(b.runs for b in blocks)
    todo = sum(not reusable(s, p, out / b.name / p.name) for b, s in sweeps for p in s.points())
    hours = todo * seconds_per_run / max(1, workers) / 3600
    if progress:
        print(f"{total} runs in {len(blocks)} sweeps under {out}; {total - todo} already done; "
              f"the rest takes roughly {_duration(hours)} on 2 cores")  # fmt: skip
    return {
        b.name: run_sweep(s, out / b.name, workers, progress, backend=backend) for b, s in sweeps
    }


def _duration(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 2 else f"{hours:.1f} h"


def seed_stats(
    table: pd.DataFrame, keys: list[str], columns: list[str]
) -> dict[tuple, tuple[float | None, float | None]]:
    """Over the complete runs of a sweep table, grouped by ``keys``: ``(*key values,
    column) → (mean, sample std)`` of each column (std ``None`` with one value; a column
    no run has is left out)."""
    done = table[table["complete"].astype(bool)]
    out: dict[tuple, tuple[float | None, float | None]] = {}
    for group, rows in done.groupby(keys, sort=False):
        group = group if isinstance(group, tuple) else (group,)
        for column in columns:
            if column not in rows:
                continue
            values = pd.to_numeric(rows[column], errors="coerce").dropna()
            if values.empty:
                continue
            std = float(values.std(ddof=1)) if len(values) > 1 else None
            out[(*group, column)] = (float(values.mean()), std)
    return out


def at_least(text: str, ours: pd.Series, theirs: pd.Series) -> Claim:
    """Whether ``ours`` ≥ ``theirs`` at every index (``None`` if a number is missing)."""
    return _compare(text, ours, theirs, lambda a, b: a >= b)


def at_most(text: str, ours: pd.Series, theirs: pd.Series, strict: bool = False) -> Claim:
    """Whether ``ours`` ≤ ``theirs`` (< if ``strict``) at every index (``None`` if a
    number is missing)."""
    return _compare(text, ours, theirs, (lambda a, b: a < b) if strict else (lambda a, b: a <= b))


def _compare(
    text: str, ours: pd.Series, theirs: pd.Series, holds: Callable[[float, float], bool]
) -> Claim:
    pairs = [(i, ours.get(i), theirs.get(i)) for i in ours.index]
    if not pairs or any(a is None or b is None or pd.isna(a) or pd.isna(b) for _, a, b in pairs):
        return Claim(text, None, "a number is missing")
    detail = "; ".join(f"{i}: {a:.3f} vs {b:.3f}" for i, a, b in pairs)
    return Claim(text, all(holds(a, b) for _, a, b in pairs), detail)


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` as a GitHub Markdown table (numbers to 4 significant digits, empty cells
    for missing values)."""

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "| " + " | ".join("---" for _ in table.columns) + " |"]  # fmt: skip
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines)


def side_by_side(
    table: pd.DataFrame, index: list[str], columns: str = "metric", digits: str = ".3f"
) -> pd.DataFrame:
    """A long ``ours``/``paper`` table pivoted for reading: one row per ``index`` value,
    one column per ``columns`` value, cells ``ours / paper`` (numbers in format
    ``digits``, ``–`` where missing)."""

    def pair(row: pd.Series) -> str:
        return " / ".join("–" if pd.isna(v) else format(v, digits) for v in (row.ours, row.paper))

    cells = table.assign(cell=table.apply(pair, axis=1))
    wide = cells.pivot(index=index, columns=columns, values="cell")
    rows = table[index].drop_duplicates()
    wide = wide.reindex(pd.MultiIndex.from_frame(rows) if len(index) > 1 else rows[index[0]])
    return wide[list(dict.fromkeys(table[columns]))].reset_index().rename_axis(columns=None)


@dataclass
class Reproduction:
    """A reproduction's output directory and what it holds."""

    out: Path
    title: str
    tables: dict[str, pd.DataFrame]
    claims: list[Claim]
    figures: list[Path] = field(default_factory=list)
    views: dict[str, pd.DataFrame] = field(default_factory=dict)
    """What ``report.md`` shows (title → table); default: :attr:`tables`."""
    sources: list[str] = field(default_factory=list)

    @classmethod
    def write(
        cls, out: Path, title: str, tables: dict[str, pd.DataFrame], claims: list[Claim],
        figures: list[Path], views: dict[str, pd.DataFrame] | None, sources: list[str],
    ) -> Reproduction:  # fmt: skip
        """Write the tables (CSV) and ``report.md`` into ``out``."""
        done = cls(out, title, tables, claims, figures, views or dict(tables), sources)
        for name, table in tables.items():
            atomic_write(out / name, table.to_csv(index=False, lineterminator="\n"))
        atomic_write(out / "report.md", done.report())
        return done

    def claims_text(self) -> str:
        return "\n".join(f"- {c.text}: **{c.verdict}** ({c.detail})" for c in self.claims)

    def report(self) -> str:
        """``report.md``: the tables, ours beside the paper's, and the claims."""
        parts = [
            f"# {self.title}: our numbers beside the paper's",
            "Our data are synthetic and our models small, so our numbers are not the "
            "paper's; they are shown side by side, never adjusted. `ours` is the mean over "
            "seeds, `ours_std` their sample standard deviation (empty with one seed).",
            "Sources of the paper's numbers:\n" + "\n".join(f"- {s}" for s in self.sources),
            "## Claims, decided on our numbers\n" + self.claims_text(),
        ]
        parts += [f"## {name}\n\n{markdown_table(t)}" for name, t in self.views.items()]
        if self.figures:
            parts.append("## Figures\n" + "\n".join(f"![{p.name}]({p.name})" for p in self.figures
                                                     if p.suffix == ".png"))  # fmt: skip
        return "\n\n".join(parts) + "\n"
