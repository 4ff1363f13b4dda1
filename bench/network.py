"""Network model throughput, next to raw SimPy speed measured in the same run.

    python bench/network.py [--repeat 3]

Prints, as wall-clock rates on this machine (best of ``--repeat`` runs):

* raw SimPy timeouts per second (1,000 processes each waiting timeouts in a loop);
* message deliveries per second with no contention (one message at a time on one link);
* flow completions per second with 100 and 1,000 concurrent flows that share a
  bottleneck behind access links of different speeds (every completion re-shares);
  static routes are computed before the clock starts (a one-time cost per source,
  printed separately).

Each network rate is also given as a ratio to the SimPy rate, a figure that travels
between machines better than the rates themselves.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import simpy

from simnet.network import Network
from simnet.topology.graph import Link, Node, Topology


def best_rate(fn: Callable[[], tuple[int, float]], repeat: int) -> float:
    """Events per wall-clock second of ``fn`` (returning events and seconds), best run."""
    rates = []
    for _ in range(repeat):
        count, seconds = fn()
        rates.append(count / seconds)
    return max(rates)


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    start = time.perf_counter()
    count = fn()
    return count, time.perf_counter() - start


def simpy_timeouts(processes: int = 1_000, each: int = 200) -> tuple[int, float]:
    return timed(lambda: _simpy_timeouts(processes, each))


def _simpy_timeouts(processes: int, each: int) -> int:
    env = simpy.Environment()

    def loop(env: simpy.Environment):
        for _ in range(each):
            yield env.timeout(1.0)

    for _ in range(processes):
        env.process(loop(env))
    env.run()
    return processes * each


def sequential_deliveries(count: int = 20_000) -> tuple[int, float]:
    topo = Topology(
        [Node("a", "end", 1e9), Node("b", "edge", 1e9)], [Link("a", "b", 1.0, 100.0, 100.0)]
    )
    env = simpy.Environment()
    net = Network(env, topo)

    def sender(env: simpy.Environment):
        for _ in range(count):
            yield net.send("a", "b", 10_000)

    env.process(sender(env))
    start = time.perf_counter()
    env.run()
    seconds = time.perf_counter() - start
    assert len(net.transfers) == count
    return count, seconds


def concurrent_flows(flows: int, seed: int = 0) -> tuple[int, float]:
    """``flows`` left hosts send to ``flows`` right hosts at once through one bottleneck."""
    rng = np.random.default_rng(seed)
    nodes = [Node("L", "edge", 1e9), Node("R", "edge", 1e9)]
    links = [Link("L", "R", 10.0, 1_000.0, 1_000.0)]
    for i in range(flows):
        nodes += [Node(f"s{i}", "end", 1e9), Node(f"d{i}", "end", 1e9)]
        links += [
            Link(f"s{i}", "L", 1.0, float(rng.choice([5, 10, 20, 50])), 100.0),
            Link(f"d{i}", "R", 1.0, 100.0, 100.0),
        ]
    topology = Topology(nodes, links)
    start = time.perf_counter()
    for i in range(flows):
        topology.path(f"s{i}", f"d{i}")
    ROUTE_SECONDS[flows] = time.perf_counter() - start
    env = simpy.Environment()
    net = Network(env, topology)
    sizes = rng.integers(100_000, 10_000_000, size=flows)
    start = time.perf_counter()
    for i in range(flows):
        net.send(f"s{i}", f"d{i}", int(sizes[i]))
    env.run()
    seconds = time.perf_counter() - start
    assert net.bytes_delivered == int(sizes.sum())
    return flows, seconds


ROUTE_SECONDS: dict[int, float] = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best kept)")
    args = parser.parse_args()
    base = best_rate(simpy_timeouts, args.repeat)
    rows = [("raw SimPy timeouts (1,000 processes)", base)]
    rows.append(("deliveries, no contention", best_rate(sequential_deliveries, args.repeat)))
    for n in (100, 1_000):
        rows.append(
            (
                f"completions, {n:,} concurrent flows",
                best_rate(lambda n=n: concurrent_flows(n), args.repeat),
            )
        )  # noqa: E501
    print(f"{'figure':<40} {'per second':>12} {'÷ SimPy':>9}")
    for name, rate in rows:
        print(f"{name:<40} {rate:>12,.0f} {rate / base:>9.4f}")
    for n, seconds in ROUTE_SECONDS.items():
        print(f"static routes for {n:,} sources on {2 * n + 2:,} nodes: {seconds:.3f} s (once)")


if __name__ == "__main__":
    main()
