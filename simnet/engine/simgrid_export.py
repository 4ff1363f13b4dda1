"""A network and its routes written out for SimGrid, the independent check of the
sharing models (``tests/test_simgrid.py``, ``bench/network.py``).

Each directed hop becomes one SimGrid link ``"A>B"`` (its raw capacity in bytes/s and
latency in seconds: the scenario's factors go to SimGrid as its own options), each
route the list of those links simnet's route crosses, both ways (the reverse route
carries the ACKs under cross-traffic), and the model's parameters SimGrid's options
(:data:`~simnet.engine.sharing.DEFAULTS`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from simnet.engine.sharing import DEFAULTS, Model
from simnet.topology.graph import Topology, mbps_to_bytes_per_s


def simgrid_platform(
    topology: Topology, pairs: Iterable[tuple[str, str]], model: Model
) -> dict[str, Any]:
    """``model`` (SimGrid's name), ``config`` (its options), ``hops`` and ``routes``
    (``"SRC DST"`` → link ids, for every pair of ``pairs`` both ways)."""
    d = DEFAULTS[model]
    hops = [
        {"id": f"{a}>{b}", "bytes_per_s": mbps_to_bytes_per_s(link.mbps(a)),
         "latency_s": link.latency_s}
        for link in topology.links.values() for a, b in ((link.a, link.b), (link.b, link.a))
    ]  # fmt: skip
    routes = {
        f"{s} {t}": [f"{a}>{b}" for a, b in topology.route(s, t)]
        for src, dst in pairs
        for s, t in ((src, dst), (dst, src))
    }
    config = {
        "network/latency-factor": d["latency_factor"],
        "network/bandwidth-factor": d["bandwidth_factor"],
        "network/weight-S": d["weight_s"],
        "network/TCP-gamma": d["tcp_gamma"],
        "network/crosstraffic": int(bool(d["crosstraffic"])),
    }
    return {"model": model.upper(), "config": config, "hops": hops, "routes": routes}
