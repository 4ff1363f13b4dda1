"""A flow alone in the network runs without the solver (``Network._start_solo``); the
moment anything else happens it joins the others as if it had been there all along. A
flow sent into an idle network is planned at once, latency phase included, with one
wake-up; anything that happens first puts it back on the ordinary path."""

from __future__ import annotations

import numpy as np
import pytest
import simpy
from test_network import MB, recv_times, simulate, topo

from simnet.engine.network import DELIVERED, DROPPED, IN_FLIGHT, Network
from simnet.engine.sharing import Sharing


def test_a_lone_flow_dropped_by_its_link_carried_what_it_had_sent():
    # 1 MB alone at 1 MB/s after 10 ms of latency; the link fails at 0.41 s: 0.4 MB sent
    net = simulate(topo([("a", "b", 10, 8)]), [(0, "a", "b", MB)], events=[(0.41, "a", "b", False)])
    (flow,) = net.transfers
    assert (flow.status, flow.t_drop) == (DROPPED, pytest.approx(0.41))
    assert flow.carried == round(0.4 * MB) == net.counts().link_bytes[("a", "b")]


def test_a_lone_flow_joined_mid_way_and_again_after_it_is_alone():
    # f1 1 MB alone at 1 MB/s sends 0.5 MB by 0.5 s, when f2 (0.5 MB) joins: 0.5 MB/s each,
    # both done at 1.5 s. f3 (0.25 MB) at 2 s is alone again: 2.25 s.
    sends = [(0, "a", "b", MB), (0.5, "a", "b", MB // 2), (2, "a", "b", MB // 4)]
    net = simulate(topo([("a", "b", 0, 8)]), sends)
    assert recv_times(net) == [pytest.approx(1.5), pytest.approx(1.5), pytest.approx(2.25)]


def test_a_lone_flow_in_flight_when_the_clock_stops_is_counted_and_settled():
    env = simpy.Environment()
    net = Network(env, topo([("a", "b", 0, 8), ("b", "c", 0, 16)]))
    net.send("a", "c", 2 * MB)
    env.run(until=0.5)
    assert net.in_flight == 1 and net.transfers[0].status == IN_FLIGHT
    net.settle()  # 0.5 MB over a-b (1 MB/s, the slower hop) and over b-c
    assert net.counts().link_bytes[("a", "b")] == net.counts().link_bytes[("b", "c")] == MB // 2


def _fates(net: Network) -> list[tuple]:
    return [(t.status, t.t_recv, t.t_drop, t.carried) for t in net.transfers]


@pytest.mark.parametrize("model", ["maxmin", "cm02"])
def test_planning_a_flow_sent_into_an_idle_network_changes_no_time(monkeypatch, model):
    """Sparse random sends on a chain with a link failing and coming back: flows overlap
    in either phase, start into an idle network or fail in their latency phase. Every
    time equals, bit for bit, the ordinary path's (planning switched off)."""
    rng = np.random.default_rng(5)
    chain = topo([("a", "b", 30, 8), ("b", "c", 20, 4), ("c", "d", 5, 16)])
    nodes = "abcd"
    sends, at = [], 0.0
    for _ in range(200):  # gaps of the order of the latencies (5-55 ms) and of transfers
        at += float(rng.choice([rng.exponential(0.03), rng.exponential(0.5)]))
        i, j = sorted(rng.choice(4, 2, replace=False))
        sends.append((at, nodes[i], nodes[j], int(rng.integers(1_000, 600_000))))
    events = [(4.013, "b", "c", False), (5.5, "b", "c", True), (17.2, "c", "d", False),
              (17.9, "c", "d", True), (30.0, "a", "b", False), (30.4, "a", "b", True)]  # fmt: skip
    sharing = {"sharing": Sharing.of(model)}
    planned = simulate(chain, sends, events, **sharing)
    monkeypatch.setattr(Network, "_idle", lambda self: False)
    ordinary = simulate(chain, sends, events, **sharing)
    assert _fates(planned) == _fates(ordinary)
    statuses = {t.status for t in planned.transfers}
    assert statuses == {DELIVERED, DROPPED}


def test_a_lone_delivery_costs_two_clock_events():
    """The planned wake-up and the transfer's own event: the latency phase has none."""
    env = simpy.Environment()
    net = Network(env, topo([("a", "b", 10, 8)]))

    def sender():
        for _ in range(50):
            yield net.send("a", "b", 10_000)

    env.process(sender())
    steps = 0
    while env.peek() < float("inf"):
        env.step()
        steps += 1
    assert [t.t_recv for t in net.transfers][-1] == pytest.approx(50 * (0.010 + 0.01))
    assert steps == 2 + 2 * 50  # the process starting and ending, two per delivery


def test_a_flow_sent_during_a_planned_flows_latency_phase_shares_from_its_start():
    """f1 (1 MB, a-b at 1 MB/s, 100 ms latency) is sent at 0; f2 (1 MB) at 50 ms, still in
    f1's latency phase. Both start at 100 / 150 ms: f1 alone 50 ms (0.05 MB), then both at
    0.5 MB/s; f1 ends at 0.15 + 0.95 / 0.5 = 2.05 s, f2 at 2.05 + 0.05 / 1 = 2.1 s."""
    net = simulate(topo([("a", "b", 100, 8)]), [(0, "a", "b", MB), (0.05, "a", "b", MB)])
    assert recv_times(net) == [pytest.approx(2.05, rel=1e-12), pytest.approx(2.1, rel=1e-12)]


def test_a_planned_flow_whose_link_fails_in_its_latency_phase_carried_nothing():
    net = simulate(
        topo([("a", "b", 100, 8)]), [(0, "a", "b", MB)], events=[(0.1 - 1e-9, "a", "b", False)]
    )
    (flow,) = net.transfers
    assert (flow.status, flow.carried, flow.t_drop) == (DROPPED, 0, pytest.approx(0.1))


def test_a_planned_flow_whose_link_fails_just_after_its_latency_phase_carried_its_bytes():
    # bandwidth phase from 0.1 s at 1 MB/s; the link fails 1 ms later: 1,000 B sent
    net = simulate(
        topo([("a", "b", 100, 8)]), [(0, "a", "b", MB)], events=[(0.101, "a", "b", False)]
    )
    (flow,) = net.transfers
    assert (flow.status, flow.carried) == (DROPPED, 1_000)
