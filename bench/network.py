"""Network model throughput, next to raw SimPy speed measured in the same run.

    python bench/network.py [--repeat 3] [--models maxmin cm02 lv08] [--big]

Prints, as wall-clock rates on this machine (best of ``--repeat`` runs), each with its
ratio to raw SimPy timeouts per second (1,000 processes each waiting timeouts in a loop),
a figure that travels between machines better than the rates themselves:

* message deliveries per second with no contention (one message at a time on one link);
* flow completions per second with 1,000 (``--big``: and 10,000) concurrent flows
  through a shared bottleneck behind access links of different speeds, and through a
  three-tier tree (ends → edges → a core → the cloud, uploads and downloads);
* the time to set up the static routes of a 10,000-end tree (once per run).

Every figure is taken under each sharing model (``network.model``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import simpy

from simnet.engine.network import Network
from simnet.engine.sharing import DEFAULTS, Sharing
from simnet.topology.graph import LinkSpec, NodeSpec, Topology


def best_rate(fn: Callable[[], tuple[int, float]], repeat: int) -> float:
    """Events per wall-clock second of ``fn`` (returning events and seconds), best run."""
    return max(count / seconds for count, seconds in (fn() for _ in range(repeat)))


def simpy_timeouts(processes: int = 1_000, each: int = 200) -> tuple[int, float]:
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


def concurrent(
    build: Callable[[int, np.random.Generator], tuple[Topology, list[tuple]]],
    flows: int,
    model: str,
) -> tuple[int, float]:
    """Completions per second of ``flows`` flows sent at once (routes set up first)."""
    rng = np.random.default_rng(0)
    topology, sends = build(flows, rng)
    for src, dst in sends:
        topology.path(src, dst)
        topology.path(dst, src)
    env = simpy.Environment()
    net = network(env, topology, model)
    sizes = rng.integers(100_000, 10_000_000, size=flows)
    start = time.perf_counter()
    for (src, dst), size in zip(sends, sizes, strict=True):
        net.send(src, dst, int(size))
    env.run()
    seconds = time.perf_counter() - start
    assert net.bytes_delivered == int(sizes.sum())
    return flows, seconds


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
    parser.add_argument("--big", action="store_true", help="10,000 concurrent flows too")
    args = parser.parse_args()
    base = best_rate(simpy_timeouts, args.repeat)
    sizes = (1_000, 10_000) if args.big else (1_000,)
    print(f"raw SimPy timeouts (1,000 processes): {base:,.0f} per second")
    print(f"{'figure':<44} {'model':<7} {'per second':>11} {'÷ SimPy':>8}")
    for model in args.models:
        rows = [("deliveries, no contention", lambda m=model: sequential_deliveries(m))]
        for n in sizes:
            for name, build in (("bottleneck", bottleneck), ("three-tier tree", tree)):
                rows.append((f"completions, {n:,} flows, {name}",
                             lambda b=build, n=n, m=model: concurrent(b, n, m)))  # fmt: skip
        for name, fn in rows:
            rate = best_rate(fn, args.repeat if "10,000" not in name else 1)
            print(f"{name:<44} {model:<7} {rate:>11,.0f} {rate / base:>8.4f}")
    print(f"routes of a 10,000-end tree: {tree_routes():.2f} s (topology built and routed)")


if __name__ == "__main__":
    main()
