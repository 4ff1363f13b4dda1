"""How flows share links: plain max-min, or SimGrid's TCP models CM02 and LV08.

Facts taken from SimGrid 3.32's sources (``src/surf/network_cm02.cpp``,
``src/kernel/resource/NetworkModel.cpp``) and documentation (``docs/source/Models.rst``):

* ``cm02``: latency factor 1, bandwidth factor 1, ``weight_s`` 0 B;
* ``lv08``: latency factor 13.01, bandwidth factor 0.97, ``weight_s`` 20,537 B;
* both: ``tcp_gamma`` 4,194,304 B (``network/TCP-gamma``) and cross-traffic on
  (``network/crosstraffic``), a flow loading each link of its reverse route with weight 0.05.

For a flow over route ``r`` with raw latency ``L = Σ_{h∈r} latency_h`` (seconds, *without*
the latency factor) and raw capacities ``B_h`` (bytes/s, *without* the bandwidth factor):

    sharing penalty  p = L + Σ_{h∈r} weight_s / B_h       (p = 1 if λ · L = 0)
    window bound     x ≤ β · tcp_gamma / (2 · L)           (none if L = 0)

The latency phase lasts ``λ · L``; rates are the weighted max-min allocation
(:func:`simnet.engine.maxmin.weighted_max_min`) under the capacities ``β · B_h``. ``maxmin`` is
penalty 1, no bound, no cross-traffic: plain max-min.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Model = Literal["maxmin", "cm02", "lv08"]
CROSSTRAFFIC_WEIGHT = 0.05
"""Weight of a flow on each link of its reverse route (its ACKs), SimGrid's value."""
TCP_GAMMA = 4_194_304.0
"""SimGrid's default ``network/TCP-gamma``, bytes."""
DEFAULTS: dict[str, dict[str, float | bool | None]] = {
    "maxmin": {"latency_factor": 1.0, "bandwidth_factor": 1.0, "weight_s": None,
               "tcp_gamma": None, "crosstraffic": None},
    "cm02": {"latency_factor": 1.0, "bandwidth_factor": 1.0, "weight_s": 0.0,
             "tcp_gamma": TCP_GAMMA, "crosstraffic": True},
    "lv08": {"latency_factor": 13.01, "bandwidth_factor": 0.97, "weight_s": 20_537.0,
             "tcp_gamma": TCP_GAMMA, "crosstraffic": True},
}  # fmt: skip
"""Each model's parameters where a scenario leaves them out (``None``: not used)."""


@dataclass(frozen=True)
class Sharing:
    """The sharing rule of a network: ``model``, ``weight_s`` (bytes), ``tcp_gamma``
    (bytes; ``None``: no window bound), ``crosstraffic`` (only ``cm02``/``lv08`` use the
    last three)."""

    model: Model = "maxmin"
    weight_s: float = 0.0
    tcp_gamma: float | None = None
    crosstraffic: bool = False

    @classmethod
    def of(cls, model: Model) -> Sharing:
        """``model`` with its defaults (:data:`DEFAULTS`)."""
        if model == "maxmin":
            return cls()
        d = DEFAULTS[model]
        return cls(model, d["weight_s"], d["tcp_gamma"], d["crosstraffic"])  # type: ignore[arg-type]

    @property
    def weighted(self) -> bool:
        """Whether rates come from the weighted solver (``cm02``, ``lv08``)."""
        return self.model != "maxmin"

    def penalty(self, latency_s: float, capacities: list[float], latency_factor: float) -> float:
        """Sharing penalty of a flow of raw route latency ``latency_s`` over links of raw
        ``capacities`` (bytes/s)."""
        if latency_factor * latency_s <= 0:
            return 1.0
        return latency_s + sum(self.weight_s / c for c in capacities)

    def bound(self, latency_s: float, bandwidth_factor: float) -> float:
        """Window bound of a flow of raw route latency ``latency_s``, bytes/s (``inf``:
        none)."""
        if self.tcp_gamma is None or latency_s <= 0:
            return float("inf")
        return bandwidth_factor * self.tcp_gamma / (2.0 * latency_s)
