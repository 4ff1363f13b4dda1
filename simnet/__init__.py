"""simnet: a discrete-event simulator of end–edge–cloud collaborative learning.

The library API (documented in docs/api.md)::

    import simnet
    result = simnet.run("scenarios/mosei_async.yaml", {"workload.cloud.updates": 3})
    result.summary["cloud"], result.messages, result.metrics

:func:`run`, :func:`load_run`, :func:`sweep`, :func:`load_sweep`, :func:`live`,
:func:`compare`, :func:`load` (a validated :class:`Scenario`), :class:`Result`,
:class:`SweepResult`, :class:`InputError`, :class:`PluginError`. Names load on first use,
so ``import simnet.actor`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "run": "simnet.api",
    "load": "simnet.api",
    "sweep": "simnet.api",
    "load_sweep": "simnet.api",
    "live": "simnet.live",
    "live_merge": "simnet.api",
    "compare": "simnet.api",
    "load_run": "simnet.report.result",
    "Result": "simnet.report.result",
    "SweepResult": "simnet.report.result",
    "Scenario": "simnet.config.scenario",
    "InputError": "simnet.errors",
    "PluginError": "simnet.errors",
}
__all__ = [
    "InputError",
    "PluginError",
    "Result",
    "Scenario",
    "SweepResult",
    "compare",
    "live",
    "live_merge",
    "load",
    "load_run",
    "load_sweep",
    "run",
    "sweep",
]

if TYPE_CHECKING:
    from simnet import live
    from simnet.api import compare, live_merge, load, load_sweep, run, sweep
    from simnet.config.scenario import Scenario
    from simnet.errors import InputError, PluginError
    from simnet.report.result import Result, SweepResult, load_run


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'simnet' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    return module if name == "live" else getattr(module, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
