"""The ``cm02`` and ``lv08`` models against SimGrid 3.32 itself.

SimGrid's Python bindings come from Debian's ``python3-simgrid`` for the system Python
(``.ci/run`` installs it); ``tests/oracles/simgrid_flows.py`` runs there as a subprocess
on the same platform — one SimGrid link per directed hop, routes given whole — and the
completion time of every flow must agree to 1e-6 relative.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_sharing import times

from simnet.engine.sharing import DEFAULTS, Sharing
from simnet.engine.simgrid_export import simgrid_platform
from simnet.topology.graph import LinkSpec, NodeSpec, Topology

SYSTEM_PYTHON = "/usr/bin/python3"
ORACLE = Path(__file__).parent / "oracles" / "simgrid_flows.py"


def _simgrid_missing() -> str | None:
    try:
        subprocess.run([SYSTEM_PYTHON, "-c", "import simgrid"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return f"SimGrid's Python bindings are not installed for {SYSTEM_PYTHON} " \
               "(apt-get install python3-simgrid)"  # fmt: skip
    return None


pytestmark = pytest.mark.skipif(_simgrid_missing() is not None, reason=str(_simgrid_missing()))


def random_case(rng: np.random.Generator, n_nodes: int, n_flows: int):
    """A random tree (latencies 1–50 ms, 1–100 Mbit/s, half the links asymmetric) and
    flows between random node pairs, both directions, 10 kB–5 MB, starting in 0–2 s."""
    names = [f"n{i}" for i in range(n_nodes)]
    links = []
    for i in range(1, n_nodes):
        up = float(rng.uniform(1, 100))
        down = float(rng.uniform(1, 100)) if rng.random() < 0.5 else up
        parent = names[int(rng.integers(0, i))]
        links.append(LinkSpec(parent, names[i], float(rng.uniform(1, 50)), up, down))
    topology = Topology([NodeSpec(n, "edge", 1e9) for n in names], links)
    flows = []
    for _ in range(n_flows):
        a, b = rng.choice(n_nodes, 2, replace=False)
        size, start = int(rng.integers(10_000, 5_000_000)), float(rng.uniform(0, 2))
        flows.append((names[a], names[b], size, start))
    return topology, flows


def simnet_times(topology: Topology, flows: list, model: str) -> list[float]:
    d = DEFAULTS[model]
    sharing = Sharing.of(model)
    sends = [(start, src, dst, size) for src, dst, size, start in flows]
    received = times(topology, sends, sharing, d["bandwidth_factor"], d["latency_factor"])
    by_start = sorted(range(len(flows)), key=lambda i: flows[i][3])  # send order = ids
    out = [0.0] * len(flows)
    for t, i in zip(received, by_start, strict=True):
        out[i] = t
    return out


def simgrid_times(topology: Topology, flows: list, model: str) -> list[float]:
    problem = {
        **simgrid_platform(topology, [(src, dst) for src, dst, *_ in flows], model),
        "hosts": list(topology.nodes),
        "flows": [{"src": s, "dst": t, "bytes": n, "start": at} for s, t, n, at in flows],
    }
    out = subprocess.run(
        [SYSTEM_PYTHON, str(ORACLE)], input=json.dumps(problem), capture_output=True,
        text=True, check=True, timeout=120,
    )  # fmt: skip
    return json.loads(out.stdout)


@pytest.mark.parametrize("model", ["cm02", "lv08"])
@pytest.mark.parametrize("seed", range(12))
def test_completion_times_agree_with_simgrid(model, seed):
    rng = np.random.default_rng(seed)
    topology, flows = random_case(rng, n_nodes=int(rng.integers(3, 14)),
                                  n_flows=int(rng.integers(1, 25)))  # fmt: skip
    ours, theirs = simnet_times(topology, flows, model), simgrid_times(topology, flows, model)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=0)


def test_the_oracle_reproduces_simgrids_documented_example():
    """Models.rst: 100 kB each way over a 1 Mbit/s, 10 ms link under LV08: 0.996079 s."""
    topology = Topology([NodeSpec("A", "edge", 1e9), NodeSpec("B", "edge", 1e9)],
                        [LinkSpec("A", "B", 10, 1, 1)])  # fmt: skip
    flows = [("A", "B", 100_000, 0.0), ("B", "A", 100_000, 0.0)]
    assert simgrid_times(topology, flows, "lv08") == [pytest.approx(0.996079, abs=5e-7)] * 2
