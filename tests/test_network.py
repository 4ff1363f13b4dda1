"""The flow-level network model against hand-computed transfer times.

Bandwidths are chosen so that ``mbps × 10⁶ / 8`` is a round number of bytes/s:
8 Mbit/s = 1 MB/s, 16 Mbit/s = 2 MB/s, 2 Mbit/s = 0.25 MB/s.
"""

from __future__ import annotations

import pytest
import simpy

from simnet.engine.network import DELIVERED, DROPPED, Network
from simnet.topology.graph import LinkSpec, NodeSpec, Topology

MB = 1_000_000


def topo(links: list[tuple], tiers: dict[str, str] | None = None) -> Topology:
    """Topology from (a, b, latency_ms, up_mbps[, down_mbps]) tuples."""
    names = sorted({n for link in links for n in link[:2]})
    tiers = tiers or {}
    nodes = [NodeSpec(n, tiers.get(n, "edge"), 1e9) for n in names]
    return Topology(
        nodes,
        [LinkSpec(a, b, lat, up, rest[0] if rest else up) for a, b, lat, up, *rest in links],
    )


def simulate(topology: Topology, sends: list[tuple], events=(), **factors) -> Network:
    """Run (at, src, dst, bytes) sends and (at, a, b, up) link events to the end."""
    env = simpy.Environment()
    net = Network(env, topology, **factors)

    def sender(at, src, dst, size):
        yield env.timeout(at)
        net.send(src, dst, size)

    for send in sends:
        env.process(sender(*send))
    for at, a, b, up in events:
        env.timeout(at).callbacks.append(lambda _, a=a, b=b, up=up: net.set_link(a, b, up))
    env.run()
    return net


def recv_times(net: Network) -> list[float | None]:
    return [t.t_recv for t in net.transfers]


def test_one_flow_is_latency_plus_size_over_bandwidth():
    net = simulate(topo([("a", "b", 10, 8)]), [(0, "a", "b", MB)])
    assert recv_times(net) == [pytest.approx(0.010 + 1.0)]


def test_two_flows_share_a_link_equally():
    net = simulate(topo([("a", "b", 10, 8)]), [(0, "a", "b", MB), (0, "a", "b", MB)])
    assert recv_times(net) == [pytest.approx(0.010 + 2.0)] * 2


def test_bottleneck_is_max_min_fair_not_equal_split():
    # L1 = a-b at 1 MB/s carries f1 (a->b) and f2 (a->c); L2 = b-c at 2 MB/s carries f2, f3.
    # Max-min: L1 is the bottleneck, f1 = f2 = 0.5 MB/s; f3 takes the rest of L2: 1.5 MB/s.
    # f1, f2 (1 MB each) end at 2 s; f3 (4.5 MB) has sent 3 MB by then, the last 1.5 MB at
    # 2 MB/s take 0.75 s more. An equal split of L2 (1 MB/s each) would end f3 at 3.5 s.
    t = topo([("a", "b", 0, 8), ("b", "c", 0, 16)])
    net = simulate(t, [(0, "a", "b", MB), (0, "a", "c", MB), (0, "b", "c", 4.5 * MB)])
    assert recv_times(net) == [pytest.approx(2.0), pytest.approx(2.0), pytest.approx(2.75)]
    assert [x.path for x in net.transfers][1] == ("a", "b", "c")


def test_staggered_start_and_end_reallocate_bandwidth():
    # f1 2 MB alone 0-1 s (1 MB left); f2 0.5 MB joins at 1 s: both at 0.5 MB/s, f2 ends at
    # 2 s; f1 has 0.5 MB left and finishes alone at 1 MB/s at 2.5 s.
    net = simulate(topo([("a", "b", 0, 8)]), [(0, "a", "b", 2 * MB), (1, "a", "b", MB // 2)])
    assert recv_times(net) == [pytest.approx(2.5), pytest.approx(2.0)]


def test_directions_are_independent_and_asymmetric():
    # up (a->b) 1 MB/s, down (b->a) 0.25 MB/s; opposite flows do not share capacity.
    net = simulate(topo([("a", "b", 0, 8, 2)]), [(0, "a", "b", MB), (0, "b", "a", MB)])
    assert recv_times(net) == [pytest.approx(1.0), pytest.approx(4.0)]


def test_multi_hop_latency_is_the_sum_and_route_minimises_latency():
    # a-b-c costs 5 + 30 ms; the direct a-c link costs 50 ms, so the route goes through b.
    t = topo([("a", "b", 5, 8), ("b", "c", 30, 8), ("a", "c", 50, 8)])
    net = simulate(t, [(0, "a", "c", MB)])
    assert net.transfers[0].path == ("a", "b", "c")
    assert recv_times(net) == [pytest.approx(0.035 + 1.0)]


def test_latency_ties_are_broken_by_node_id():
    t = topo([("s", "y", 1, 8), ("y", "t", 1, 8), ("s", "x", 1, 8), ("x", "t", 1, 8)])
    assert t.path("s", "t") == ("s", "x", "t")
    assert t.path("t", "s") == ("t", "x", "s")


def test_link_failure_drops_the_flow_and_frees_its_share():
    # f1 a->c and f2 a->b share a-b (0.5 MB/s each). b-c fails at 0.5 s: f1 is dropped
    # after 0.25 MB; f2 (0.25 MB sent) then runs alone at 1 MB/s and ends at 1.25 s.
    t = topo([("a", "b", 0, 8), ("b", "c", 0, 8)])
    net = simulate(t, [(0, "a", "c", MB), (0, "a", "b", MB)], events=[(0.5, "b", "c", False)])
    f1, f2 = net.transfers
    assert (f1.status, f1.t_recv, f1.t_drop) == (DROPPED, None, pytest.approx(0.5))
    assert (f2.status, f2.t_recv) == (DELIVERED, pytest.approx(1.25))
    assert net.bytes_sent == net.bytes_delivered + net.bytes_dropped == 2 * MB
    assert net.bytes_dropped == MB
    assert net.counts().link_bytes[("a", "b")] == pytest.approx(MB + 0.25 * MB)
    assert net.counts().link_bytes[("b", "c")] == pytest.approx(0.25 * MB)


def test_send_over_a_down_link_is_dropped_and_link_can_come_back():
    t = topo([("a", "b", 10, 8)])
    net = simulate(
        t,
        [(1, "a", "b", MB), (3, "a", "b", MB)],
        events=[(0.5, "a", "b", False), (2, "a", "b", True)],
    )
    assert [x.status for x in net.transfers] == [DROPPED, DELIVERED]
    assert net.transfers[0].t_drop == pytest.approx(1.0)
    assert net.transfers[1].t_recv == pytest.approx(3 + 0.010 + 1.0)


def test_failure_during_latency_phase_drops():
    net = simulate(
        topo([("a", "b", 100, 8)]), [(0, "a", "b", MB)], events=[(0.05, "a", "b", False)]
    )
    assert net.transfers[0].status == DROPPED
    assert net.transfers[0].t_drop == pytest.approx(0.05)


def test_calibration_factors_scale_latency_and_bandwidth():
    t = topo([("a", "b", 10, 8)])
    net = simulate(t, [(0, "a", "b", MB)], bandwidth_factor=0.5, latency_factor=3.0)
    assert recv_times(net) == [pytest.approx(0.030 + 2.0)]


def test_zero_bytes_and_self_sends():
    net = simulate(topo([("a", "b", 10, 8)]), [(0, "a", "b", 0), (1, "a", "a", MB)])
    assert recv_times(net) == [pytest.approx(0.010), pytest.approx(1.0)]


def test_counters_per_link_class_and_kind():
    t = topo([("e", "m", 0, 8), ("m", "c", 0, 8)], tiers={"e": "end", "m": "edge", "c": "cloud"})
    env = simpy.Environment()
    net = Network(env, t)
    net.send("e", "c", 1000, kind="update")
    net.send("m", "c", 500, kind="model")
    env.run()
    assert dict(net.counts().class_bytes) == {"end-edge": 1000, "edge-cloud": 1500}
    assert net.counts().kind_bytes["update"] == {"sent": 1000, "delivered": 1000, "dropped": 0}
    assert net.counts().link_bytes[("e", "m")] == 1000
