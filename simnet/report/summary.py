"""The headline figures of a finished world, for ``summary.json``.

Two byte measures, named apart everywhere (docs/network-model.md):

* **message bytes** — each message once, its encoded size: ``bytes_total`` (= delivered +
  dropped + in flight), ``bytes_by_phase``, ``bytes_by_kind``,
  ``message_bytes_by_link_class`` (a message once in every class of link it crosses);
* **link bytes** — each hop a message crosses, the bytes it carried there (all of a
  delivered message, what a dropped or unfinished one had transmitted):
  ``bytes_by_tier`` (per link class), ``bytes_by_tier_by_phase``, ``link_bytes_total``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simnet.engine.network import DELIVERED, DROPPED, IN_FLIGHT
from simnet.engine.world import World
from simnet.topology.graph import class_order

FAULT_COUNTS = ("crash", "recovery", "dropout", "retry", "gave_up", "skipped_push")
"""Fault-related events every summary counts (``World.count``), zeros included."""


def phase_order(phases: Any) -> list[str]:
    """Phases in reading order: ``training`` first, then the others alphabetically."""
    return sorted(phases, key=lambda p: (p != "training", p))


def network_summary(world: World) -> dict[str, Any]:
    """Message and byte counts (see the module doc); call after ``Network.settle``."""
    net = world.network.counts()
    statuses = [t.status for t in world.network.transfers]
    phases = phase_order(net.phase_bytes)
    return {
        "messages": {s: statuses.count(s) for s in (DELIVERED, DROPPED, IN_FLIGHT)},
        "bytes_total": net.bytes_sent,
        "bytes_delivered": net.bytes_delivered,
        "bytes_dropped": net.bytes_dropped,
        "bytes_in_flight": net.bytes_sent - net.bytes_delivered - net.bytes_dropped,
        "bytes_by_phase": {p: net.phase_bytes[p] for p in phases},
        "bytes_by_kind": _with_in_flight(net.kind_bytes),
        "message_bytes_by_link_class": _with_in_flight(net.class_messages),
        "link_bytes_total": sum(net.class_bytes.values()),
        "bytes_by_tier": _by_class(net.class_bytes),
        "bytes_by_tier_by_phase": {p: _by_class(net.phase_class_bytes[p]) for p in phases},
    }


def _by_class(counts: dict[str, int]) -> dict[str, int]:
    """``counts`` in link-class order (end first)."""
    return {k: counts[k] for k in sorted(counts, key=lambda c: (class_order(c), c))}


def _with_in_flight(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {
        key: {**c, IN_FLIGHT: c["sent"] - c[DELIVERED] - c[DROPPED]}
        for key, c in sorted(counts.items())
    }


def timing_summary(world: World, finished_at: float | None) -> dict[str, Any]:
    """``virtual_time_s``: when the workload's last activity ended — the later of the
    instant it finished and its last delivery, drop or computation; ``clock_end_s`` too
    when the clock ran on past it (link events, idle timers). ``busy_s_by_tier``: seconds
    the nodes of each tier spent computing, summed."""
    ends = [t.t_recv if t.t_recv is not None else t.t_drop for t in world.network.transfers]
    active = [e for e in ends if e is not None]
    active += [n.last_active for n in world.nodes.values()]
    if finished_at is not None:
        active.append(finished_at)
    end = max(active, default=world.env.now)
    out: dict[str, Any] = {"virtual_time_s": float(end)}
    if world.env.now > end:
        out["clock_end_s"] = float(world.env.now)
    busy: dict[str, float] = {}
    for node in world.nodes.values():
        busy[node.tier] = busy.get(node.tier, 0.0) + node.busy_s
    out["busy_s_by_tier"] = busy
    return out


def fault_summary(world: World) -> dict[str, int]:
    """How many crashes, recoveries, drop-outs, retries, give-ups and skipped pushes."""
    return {what: int(world.faults[what]) for what in FAULT_COUNTS} | {
        k: int(v) for k, v in sorted(world.faults.items()) if k not in FAULT_COUNTS
    }


def incomplete_reason(world: World, stopped: str | None) -> str:
    """One line saying why a run stopped before its workload finished: the clock stalled
    or hit its limit (``stopped``), or no event was left; and who waited for what."""
    why = stopped or f"no event left at t = {world.env.now:.6g} s"
    waits = world.waiting()
    if not waits:
        return f"{why}; nobody was waiting for a message"
    shown = "; ".join(waits[:6]) + (f"; … {len(waits) - 6} more" if len(waits) > 6 else "")
    return f"{why}: {shown}"


def time_stats(seconds: np.ndarray) -> dict[str, float]:
    """Mean, median (``p50``), 95th percentile and maximum of ``seconds``."""
    return {
        "mean": float(seconds.mean()),
        "p50": float(np.percentile(seconds, 50)),
        "p95": float(np.percentile(seconds, 95)),
        "max": float(seconds.max()),
    }
