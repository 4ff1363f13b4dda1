"""A flow alone in the network runs without the solver (``Network._start_solo``); the
moment anything else happens it joins the others as if it had been there all along."""

from __future__ import annotations

import pytest
import simpy
from test_network import MB, recv_times, simulate, topo

from simnet.engine.network import DROPPED, IN_FLIGHT, Network


def test_a_lone_flow_dropped_by_its_link_carried_what_it_had_sent():
    # 1 MB alone at 1 MB/s after 10 ms of latency; the link fails at 0.41 s: 0.4 MB sent
    net = simulate(topo([("a", "b", 10, 8)]), [(0, "a", "b", MB)], events=[(0.41, "a", "b", False)])
    (flow,) = net.transfers
    assert (flow.status, flow.t_drop) == (DROPPED, pytest.approx(0.41))
    assert flow.carried == round(0.4 * MB) == net.link_bytes[("a", "b")]


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
    assert net.link_bytes[("a", "b")] == net.link_bytes[("b", "c")] == MB // 2
