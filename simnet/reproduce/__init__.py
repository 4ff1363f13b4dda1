"""Reproductions of the papers simnet implements: ``simnet.reproduce.reproduce("ml-ecs")``
or ``python -m simnet reproduce ml-ecs`` (``mega-ce2`` likewise). Each runs the paper's
evaluation as resumable sweeps and writes its tables beside the paper's numbers, its
figures and ``report.md``."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

from simnet.errors import InputError
from simnet.reproduce.common import Reproduction, Settings

PAPERS = {"ml-ecs": "simnet.reproduce.ml_ecs", "mega-ce2": "simnet.reproduce.mega_ce2"}
"""Paper name → the module whose ``reproduce(out, settings, …)`` reproduces it (``settings``
a :class:`~simnet.reproduce.common.Settings`)."""


def reproduce(
    paper: str, out: str | Path | None = None, quick: bool = False, seeds: int | None = None,
    workers: int = 1, backend: str = "pool", overrides: Sequence[tuple[str, Any]] = (),
    progress: bool = True,
) -> Reproduction:  # fmt: skip
    """Reproduce ``paper``'s evaluation into ``out`` (default ``runs/reproduce-PAPER``):
    ``seeds`` per point (default 1 with ``quick``, else 5 as the papers), ``workers``
    processes or Ray CPUs (``backend`` ``pool`` or ``ray``), ``overrides`` for every run.
    Rerunning the same call resumes: finished runs are reused."""
    if paper not in PAPERS:
        raise InputError("reproduce", "paper", f"unknown paper {paper!r}; known: {sorted(PAPERS)}")
    seeds = (1 if quick else 5) if seeds is None else seeds
    if seeds < 1:
        raise InputError("reproduce", "--seeds", "must be at least 1")
    if workers < 1:
        raise InputError("reproduce", "--workers", "must be at least 1")
    if backend not in ("pool", "ray"):
        raise InputError("reproduce", "--backend", "must be pool or ray")
    module = import_module(PAPERS[paper])
    out = Path(out) if out is not None else Path("runs") / f"reproduce-{paper}"
    out.mkdir(parents=True, exist_ok=True)
    settings = Settings(seeds=seeds, quick=quick, overrides=tuple(overrides))
    return module.reproduce(out, settings, workers, backend, progress)


__all__ = ["PAPERS", "Reproduction", "reproduce"]
