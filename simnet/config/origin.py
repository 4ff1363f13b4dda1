"""Where a scenario came from: the name errors give it and the folder its paths are in."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Origin:
    """``source``: the scenario file (``"<scenario>"`` for one given as a mapping), named in
    errors; ``base``: the folder its relative paths (topology, data, traces, plug-in
    files) are resolved against."""

    source: str
    base: Path
    made_absolute: set[str] = field(default_factory=set, compare=False, repr=False)
    """The absolute paths :meth:`resolve` made of relative ones: the checks put them in
    the validated scenario, whose run writes them relative again
    (:meth:`~simnet.config.scenario.Scenario.as_run`)."""

    def resolve(self, path: str) -> Path:
        """``path`` as an absolute path from :attr:`base` (noted if it was relative)."""
        resolved = (self.base / path).resolve()
        if not Path(path).is_absolute():
            self.made_absolute.add(str(resolved))
        return resolved


RUN_ORIGIN = Origin("workload", Path("."))
"""Where a run builds its plug-ins from: the scenario's check made their file references
absolute."""
