"""Where a scenario came from: the name errors give it and the folder its paths are in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Origin:
    """``source``: the scenario file (``"<scenario>"`` for one given as a mapping), named in
    errors; ``base``: the folder its relative paths (topology, data, traces, plug-in
    files) are resolved against."""

    source: str
    base: Path

    def resolve(self, relative: str) -> Path:
        """``relative`` as an absolute path from :attr:`base`."""
        return (self.base / relative).resolve()


RUN_ORIGIN = Origin("workload", Path("."))
"""Where a run builds its plug-ins from: the scenario's check made their file references
absolute."""
