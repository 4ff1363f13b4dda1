"""Network model throughput, next to raw SimPy speed measured in the same run.

    python bench/network.py [--repeat 3] [--models maxmin cm02 lv08] [--flows 1000 2000]
        [--big] [--no-simgrid] [--simgrid-timeout 180]

Prints, as wall-clock rates on this machine (best of ``--repeat`` runs), each with its
ratio to raw SimPy timeouts per second (1,000 processes each waiting timeouts in a loop),
a figure that travels between machines better than the rates themselves:

* message deliveries per second with no contention (one message at a time on one link);
* flow completions per second with 1,000 and 2,000 (``--flows``; ``--big``: and 10,000)
  concurrent flows
  through a shared bottleneck behind access links of different speeds, and through a
  three-tier tree (ends → edges → a core → the cloud, uploads and downloads);
* the time to set up the static routes of a 10,000-end tree (once per run).

Every figure is taken under each sharing model (``network.model``).

Then, unless ``--no-simgrid``, a table sets simnet's wall seconds for each set of
concurrent flows (the best run) next to SimGrid 3.32's for the same flows: topology,
sizes, start at 0 and simnet's routes are written to JSON and timed by
``bench/simgrid_time.py`` under the system Python (``/usr/bin/python3`` with Debian's
``python3-simgrid``), engine run alone; it prints both times, their ratio and the largest
relative difference of the completion times. ``cm02`` and ``lv08`` run as SimGrid's CM02
and LV08 with simnet's parameters (``tests/test_simgrid.py``'s configuration); ``maxmin``
has no SimGrid counterpart (n/a). A SimGrid run over ``--simgrid-timeout`` seconds is
skipped with a note; without the bindings the column reads "SimGrid not installed".
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import simpy

from simnet.engine.network import Network
from simnet.engine.sharing import DEFAULTS, Sharing
from simnet.engine.simgrid_export import simgrid_platform
from simnet.topology.graph import LinkSpec, NodeSpec, Topology

SYSTEM_PYTHON = "/usr/bin/python3"
SIMGRID_TIME = Path(__file__).with_name("simgrid_time.py")
Flows = tuple[Topology, list[tuple[str, str]], np.ndarray]
"""A topology, its (src, dst) flows (routes already set up) and their sizes in bytes."""


def best_rate(fn: Callable[[], tuple[int, float]], repeat: int) -> float:
    """Events per wall-clock second of ``fn`` (returning events and seconds), best run."""
    return max(count / seconds for count, seconds in (fn() for _ in range(repeat)))


def simpy_timeouts(processes: int = 1_000, each: int = 200) -> tuple[int, float]:
    gc.collect()
    env = simpy.Environment()

    def loop(env: simpy.Environment):
        for _ in range(each):
            yield env.timeout(1.0)

    for _ in range(processes):
        env.process(loop(env))
    start = time.perf_counter()
    env.run()
    return processes * each, time.perf_counter() - start


def network(env: simpy.Environment, topology: Topology, model: str) -> Network:
    d = DEFAULTS[model]
    return Network(env, topology, d["bandwidth_factor"], d["latency_factor"], Sharing.of(model))


def sequential_deliveries(model: str, count: int = 20_000) -> tuple[int, float]:
    topo = Topology(
        [NodeSpec("a", "end", 1e9), NodeSpec("b", "edge", 1e9)],
        [LinkSpec("a", "b", 1.0, 100.0, 100.0)],
    )
    gc.collect()
    env = simpy.Environment()
    net = network(env, topo, model)

    def sender(env: simpy.Environment):
        for _ in range(count):
            yield net.send("a", "b", 10_000)

    env.process(sender(env))
    start = time.perf_counter()
    env.run()
    seconds = time.perf_counter() - start
    assert len(net.transfers) == count
    return count, seconds


def bottleneck(flows: int, rng: np.random.Generator) -> tuple[Topology, list[tuple]]:
    """``flows`` left hosts send to ``flows`` right hosts at once through one link."""
    nodes = [NodeSpec("L", "edge", 1e9), NodeSpec("R", "edge", 1e9)]
    links = [LinkSpec("L", "R", 10.0, 1_000.0, 1_000.0)]
    for i in range(flows):
        nodes += [NodeSpec(f"s{i}", "end", 1e9), NodeSpec(f"d{i}", "end", 1e9)]
        links += [
            LinkSpec(f"s{i}", "L", float(rng.uniform(1, 20)), float(rng.choice([5, 10, 20, 50])),
                 100.0),
            LinkSpec(f"d{i}", "R", 1.0, 100.0, 100.0),
        ]  # fmt: skip
    sends = [(f"s{i}", f"d{i}") for i in range(flows)]
    return Topology(nodes, links), sends


def tree(flows: int, rng: np.random.Generator) -> tuple[Topology, list[tuple]]:
    """Ends under edges (100 each) under a core router and the cloud; three in four flows
    upload to the cloud, the rest download from it."""
    edges = max(1, flows // 100)
    nodes = [NodeSpec("cloud", "cloud", 1e13), NodeSpec("core", "edge", 1e12)]
    links = [LinkSpec("core", "cloud", 1.0, 10_000.0, 10_000.0)]
    for e in range(edges):
        nodes.append(NodeSpec(f"e{e}", "edge", 1e12))
        links.append(LinkSpec(f"e{e}", "core", float(rng.uniform(5, 40)),
                          float(rng.choice([100, 200, 500])), 1_000.0))  # fmt: skip
    for i in range(flows):
        nodes.append(NodeSpec(f"u{i}", "end", 1e10))
        links.append(LinkSpec(f"u{i}", f"e{i % edges}", float(rng.uniform(1, 10)),
                          float(rng.choice([10, 20, 50])), 100.0))  # fmt: skip
    sends = [(f"u{i}", "cloud") if i % 4 else ("cloud", f"u{i}") for i in range(flows)]
    return Topology(nodes, links), sends


def flows(
    build: Callable[[int, np.random.Generator], tuple[Topology, list[tuple]]], count: int
) -> Flows:
    """``count`` flows of 100 kB–10 MB on ``build``'s topology, routes set up both ways."""
    rng = np.random.default_rng(0)
    topology, sends = build(count, rng)
    for src, dst in sends:
        topology.path(src, dst)
        topology.path(dst, src)
    return topology, sends, rng.integers(100_000, 10_000_000, size=count)


def concurrent(case: Flows, model: str) -> tuple[float, list[float]]:
    """Wall seconds to send every flow of ``case`` at once and run them to the end, and
    each flow's completion time (virtual seconds)."""
    topology, sends, sizes = case
    gc.collect()  # not the garbage of earlier runs: each run starts on a clean heap
    env = simpy.Environment()
    net = network(env, topology, model)
    start = time.perf_counter()
    for (src, dst), size in zip(sends, sizes, strict=True):
        net.send(src, dst, int(size))
    env.run()
    seconds = time.perf_counter() - start
    assert net.bytes_delivered == int(sizes.sum())
    return seconds, [t.t_recv for t in net.transfers]


def simgrid_missing() -> bool:
    """Whether the system Python lacks SimGrid's bindings."""
    try:
        subprocess.run([SYSTEM_PYTHON, "-c", "import simgrid"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return True
    return False


def simgrid_problem(case: Flows, model: str) -> dict:
    """``case`` in ``bench/simgrid_time.py``'s format: the platform
    (:func:`~simnet.engine.simgrid_export.simgrid_platform`) and the flows, all at t = 0."""
    topology, sends, sizes = case
    flows = [{"src": src, "dst": dst, "bytes": int(size)}
             for (src, dst), size in zip(sends, sizes, strict=True)]  # fmt: skip
    return {**simgrid_platform(topology, sends, model), "flows": flows}


def simgrid(case: Flows, model: str, timeout_s: float) -> tuple[float, list[float]] | None:
    """SimGrid's engine-run wall seconds and completion times for ``case`` under
    ``model`` (``None`` if the subprocess takes over ``timeout_s``)."""
    with tempfile.TemporaryDirectory() as tmp:
        problem, times = Path(tmp) / "problem.json", Path(tmp) / "times.json"
        problem.write_text(json.dumps(simgrid_problem(case, model)))
        try:
            subprocess.run([SYSTEM_PYTHON, str(SIMGRID_TIME), str(problem), str(times)],
                           check=True, capture_output=True, timeout=timeout_s)  # fmt: skip
        except subprocess.TimeoutExpired:
            return None
        out = json.loads(times.read_text())
    return out["seconds"], out["times"]


def simgrid_column(
    case: Flows, model: str, ours: tuple[float, list[float]], timeout_s: float
) -> str:
    """The SimGrid cells of a row: seconds, simnet ÷ SimGrid, max relative difference."""
    if model == "maxmin":
        return f"{'n/a (no plain max-min in SimGrid)':>40}"
    theirs = simgrid(case, model, timeout_s)
    if theirs is None:
        return f"{f'skipped: over {timeout_s:g} s':>40}"
    diff = max(abs(a - b) / b for a, b in zip(ours[1], theirs[1], strict=True))
    return f"{theirs[0]:>14.3f} {ours[0] / theirs[0]:>10.2f} {diff:>14.1e}"


def tree_routes(ends: int = 10_000, per_edge: int = 100) -> float:
    """Seconds to build a tree of ``ends`` ends and route every end to the cloud."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    topology, _ = tree(ends, rng)
    for end in range(ends):
        topology.path(f"u{end}", "cloud")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best kept)")
    parser.add_argument("--models", nargs="+", default=["maxmin", "cm02", "lv08"])
    parser.add_argument("--flows", nargs="+", type=int, default=[1_000, 2_000],
                        help="numbers of concurrent flows per case")  # fmt: skip
    parser.add_argument("--big", action="store_true", help="10,000 concurrent flows too")
    parser.add_argument("--no-simgrid", action="store_true", help="skip the SimGrid table")
    parser.add_argument("--simgrid-timeout", type=float, default=180.0,
                        help="seconds a SimGrid run may take before it is skipped")  # fmt: skip
    args = parser.parse_args()
    base = best_rate(simpy_timeouts, args.repeat)
    counts = [*args.flows, 10_000] if args.big else args.flows
    builds = (("bottleneck", bottleneck), ("three-tier tree", tree))
    cases = [(name, n, flows(build, n)) for n in counts for name, build in builds]
    print(f"raw SimPy timeouts (1,000 processes): {base:,.0f} per second")
    print(f"{'figure':<44} {'model':<7} {'per second':>11} {'÷ SimPy':>8}")
    measured = []
    for model in args.models:
        rate = best_rate(lambda m=model: sequential_deliveries(m), args.repeat)
        print(f"{'deliveries, no contention':<44} {model:<7} {rate:>11,.0f} {rate / base:>8.4f}")
        for name, n, case in cases:
            runs = [concurrent(case, model) for _ in range(args.repeat if n < 10_000 else 1)]
            best = min(runs, key=lambda run: run[0])
            rate = n / best[0]
            figure = f"completions, {n:,} flows, {name}"
            print(f"{figure:<44} {model:<7} {rate:>11,.0f} {rate / base:>8.4f}")
            measured.append((name, n, model, case, best))
    print(f"routes of a 10,000-end tree: {tree_routes():.2f} s (topology built and routed)")
    if args.no_simgrid:
        return
    missing = simgrid_missing()
    print(f"\n{'case':<16} {'flows':>6} {'model':<7} {'simnet s':>9} {'SimGrid s':>14} "
          f"{'simnet÷SG':>10} {'max rel diff':>14}")  # fmt: skip
    for name, n, model, case, ours in measured:
        cells = (
            f"{'SimGrid not installed':>40}"
            if missing
            else simgrid_column(case, model, ours, args.simgrid_timeout)
        )
        print(f"{name:<16} {n:>6,} {model:<7} {ours[0]:>9.3f} {cells}", flush=True)


if __name__ == "__main__":
    main()
