"""Flows that all cross one hop are kept in virtual time
(:class:`simnet.engine.bottleneck.SharedBottleneck`): the same times as re-solving the
arrays on every change, to 1e-12 relative, through starts, ends, failures and flows that
do not fit (which put every flow back in the arrays)."""

from __future__ import annotations

import numpy as np
import pytest
import simpy
from test_network import MB, recv_times, simulate, topo

import simnet.engine.network as network_module
from simnet.engine.bottleneck import SharedBottleneck
from simnet.engine.network import DELIVERED, DROPPED, Network
from simnet.engine.sharing import DEFAULTS, Sharing


@pytest.fixture
def group_from_two(monkeypatch):
    """Groups from two flows on (the default waits for ``GROUP_MIN``); counts the flows
    taken in."""
    monkeypatch.setattr(network_module, "GROUP_MIN", 2)
    joined = []
    add = SharedBottleneck.add

    def counted(self, transfer, remaining):
        fits = add(self, transfer, remaining)
        joined.append(fits)
        return fits

    monkeypatch.setattr(SharedBottleneck, "add", counted)
    return joined


def test_a_capped_flow_is_freed_when_newcomers_lower_the_level_and_capped_again(group_from_two):
    """Bottleneck 10 MB/s, no latency. A (4 MB) behind 2 MB/s, B (10 MB) and C (20 MB)
    behind fast links: A capped at 2, B and C at 4. At 1 s four 1 MB flows join: 10/7 <
    2 MB/s, so all seven are free at 10/7 and the four end at 1.7 s (A has 1 MB left, B 5,
    C 15). A is capped again (10/3 > 2): it ends at 2.2 s; B (3 MB left) at 2.2 + 3/5 =
    2.8 s; C (10 MB left) alone at 3.8 s."""
    links = [("L", "R", 0, 80)]
    sends = []
    for name, access, at, size in [("A", 16, 0, 4), ("B", 1000, 0, 10), ("C", 1000, 0, 20),
                                   ("D", 1000, 1, 1), ("E", 1000, 1, 1), ("F", 1000, 1, 1),
                                   ("G", 1000, 1, 1)]:  # fmt: skip
        links += [(name, "L", 0, access), ("R", f"to{name}", 0, 1000)]
        sends.append((at, name, f"to{name}", size * MB))
    net = simulate(topo(links), sends)
    expected = [2.2, 2.8, 3.8, 1.7, 1.7, 1.7, 1.7]
    assert recv_times(net) == [pytest.approx(t, rel=1e-12) for t in expected]
    assert all(group_from_two) and len(group_from_two) == 7  # 3 taken in at once, 4 joined


def _dumbbell(rng: np.random.Generator, hosts: int) -> tuple:
    """``hosts`` left hosts behind access links of 5 or 200 Mbit/s, a 100 Mbit/s
    bottleneck L-R, ``hosts`` right hosts behind 20 or 1,000 Mbit/s."""
    links = [("L", "R", 10, 100, 100)]
    for i in range(hosts):
        access = float(rng.choice([5, 200, 200, 200]))
        links += [(f"s{i}", "L", float(rng.uniform(1, 20)), access, 50),
                  ("R", f"d{i}", 1, float(rng.choice([20, 1000, 1000])))]  # fmt: skip
    return topo(links)


def _fates(net: Network) -> list[tuple]:
    return [(t.status, t.t_recv, t.t_drop, t.carried) for t in net.transfers]


def _same_fates(grouped: Network, arrays: Network) -> None:
    for a, b in zip(_fates(grouped), _fates(arrays), strict=True):
        assert a[0] == b[0]
        for x, y in zip(a[1:3], b[1:3], strict=True):
            assert (x is None) == (y is None) and (x is None or x == pytest.approx(y, rel=1e-12))
        assert abs(a[3] - b[3]) <= 1


@pytest.mark.parametrize("model", ["maxmin", "cm02", "lv08"])
def test_grouped_flows_end_when_the_arrays_say(monkeypatch, group_from_two, model):
    """300 random sends over 40 s on a dumbbell: most cross the bottleneck, some go
    between left hosts (they do not cross it), some share a slow access link (it could
    saturate); links fail and come back. Same fates as with groups switched off."""
    rng = np.random.default_rng(11)
    world = _dumbbell(rng, 24)
    sends, at = [], 0.0
    for _ in range(300):
        at += float(rng.exponential(0.13))
        i, j = rng.integers(24, size=2)
        dst = f"d{j}" if rng.random() < 0.95 else f"s{(i + 1) % 24}"
        sends.append((at, f"s{i}", dst, int(rng.integers(1_000, 3 * MB // 2))))
    events = [(7.3, "s3", "L", False), (9.0, "s3", "L", True), (21.01, "L", "R", False),
              (21.5, "L", "R", True)]  # fmt: skip
    d = DEFAULTS[model]
    factors = {"sharing": Sharing.of(model), "latency_factor": d["latency_factor"],
               "bandwidth_factor": d["bandwidth_factor"]}  # fmt: skip
    grouped = simulate(world, sends, events, **factors)
    assert sum(group_from_two) > 100 and not all(group_from_two)  # taken in, and not fitting
    monkeypatch.setattr(network_module, "GROUP_MIN", 10**9)
    arrays = simulate(world, sends, events, **factors)
    _same_fates(grouped, arrays)
    assert {t.status for t in grouped.transfers} == {DELIVERED, DROPPED}


@pytest.mark.parametrize("model", ["maxmin", "cm02"])
def test_flows_crossing_caps_either_way_end_when_the_arrays_say(monkeypatch, group_from_two, model):
    """150 flows sent over 3 s through a 100 Mbit/s bottleneck behind 5-50 Mbit/s access
    links: as flows come and go the level crosses the access rates both ways. Every flow
    fits, so the group holds them from the first solve to the last delivery."""
    rng = np.random.default_rng(3)
    links, sends = [("L", "R", 10, 100)], []
    for i in range(150):
        links += [(f"s{i}", "L", float(rng.uniform(1, 20)), float(rng.choice([5, 10, 20, 50]))),
                  ("R", f"d{i}", 1, 100)]  # fmt: skip
        sends.append((float(rng.uniform(0, 3)), f"s{i}", f"d{i}", int(rng.integers(1e5, 4e6))))
    world = topo(links)
    grouped = simulate(world, sends, sharing=Sharing.of(model))
    assert all(group_from_two) and len(group_from_two) > 140
    monkeypatch.setattr(network_module, "GROUP_MIN", 10**9)
    _same_fates(grouped, simulate(world, sends, sharing=Sharing.of(model)))


def test_tiny_equal_flows_late_in_virtual_time_all_end(monkeypatch, group_from_two):
    """50 one-byte and 50 equal 10 kB flows sent at once 10⁹ s into the run: ties end
    together and nothing is left behind."""
    links = [("L", "R", 1, 8)]
    sends = []
    for i in range(100):
        links += [(f"s{i}", "L", 1, 100), ("R", f"d{i}", 1, 100)]
        sends.append((1e9, f"s{i}", f"d{i}", 1 if i % 2 else 10_000))
    grouped = simulate(topo(links), sends)
    monkeypatch.setattr(network_module, "GROUP_MIN", 10**9)
    arrays = simulate(topo(links), sends)
    _same_fates(grouped, arrays)
    assert grouped.in_flight == 0 and {t.status for t in grouped.transfers} == {DELIVERED}
    # 100 flows share 1 MB/s: the 1-byte ones end first, then 50 × 10 kB at 1/50 MB/s each
    last = 1e9 + 0.003 + 50 * 10_000 / 1e6 + 50 / 1e6  # three 1 ms hops of latency
    assert max(recv_times(grouped)) == pytest.approx(last, abs=1e-6)


def test_settle_counts_what_grouped_flows_carried(group_from_two):
    """Ten 1 MB flows share 1 MB/s from 2 ms on; at 0.502 s each has sent 50 kB."""
    links = [("L", "R", 1, 8)]
    env = simpy.Environment()
    for i in range(10):
        links += [(f"s{i}", "L", 0.5, 100), ("R", f"d{i}", 0.5, 100)]
    net = Network(env, topo(links))
    for i in range(10):
        net.send(f"s{i}", f"d{i}", MB)
    env.run(until=0.502)
    assert net.in_flight == 10
    net.settle()
    assert [t.carried for t in net.transfers] == [50_000] * 10
    assert net.counts().link_bytes[("L", "R")] == 500_000
