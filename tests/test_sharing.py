"""The TCP sharing models ``cm02`` and ``lv08`` against hand-computed transfer times.

Bandwidths are chosen so that ``mbps × 10⁶ / 8`` is a round number of bytes/s:
8 Mbit/s = 1 MB/s, 1 Mbit/s = 125,000 B/s, 1000 Mbit/s = 125 MB/s.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import simpy
from oracles.lmm_exact import exact_weighted_max_min

from simnet.config.scenario import load_scenario
from simnet.engine.maxmin import max_min_rates, weighted_max_min
from simnet.engine.network import Network
from simnet.engine.sharing import Sharing
from simnet.errors import InputError
from simnet.topology.graph import LinkSpec, NodeSpec, Topology

MB = 1_000_000
CM02 = Sharing("cm02", weight_s=0.0, tcp_gamma=4_194_304.0, crosstraffic=False)


def topo(links: list[tuple]) -> Topology:
    names = sorted({n for link in links for n in link[:2]})
    return Topology([NodeSpec(n, "edge", 1e9) for n in names], [LinkSpec(*link) for link in links])


def times(topology, sends, sharing, bandwidth_factor=1.0, latency_factor=1.0):
    """Receive times of (at, src, dst, bytes) sends."""
    env = simpy.Environment()
    net = Network(env, topology, bandwidth_factor, latency_factor, sharing)

    def sender(at, src, dst, size):
        yield env.timeout(at)
        net.send(src, dst, size)

    for send in sends:
        env.process(sender(*send))
    env.run()
    return [t.t_recv for t in net.transfers]


def test_the_window_bound_limits_a_lone_flow_on_a_fast_long_link():
    """L = 0.1 s: x ≤ γ / (2L) = 4,194,304 / 0.2 = 20,971,520 B/s < 125 MB/s; 10 MB take
    0.1 + 10⁷ / 20,971,520 s."""
    t = times(topo([("a", "b", 100, 1000, 1000)]), [(0, "a", "b", 10 * MB)], CM02)
    assert t == [pytest.approx(0.1 + 10 * MB / 20_971_520, rel=1e-12)]


def test_the_window_bound_is_inactive_on_a_slow_link():
    """L = 10 ms: γ / (2L) ≈ 210 MB/s ≫ 1 MB/s; 1 MB takes 0.01 + 1 s."""
    t = times(topo([("a", "b", 10, 8, 8)]), [(0, "a", "b", MB)], CM02)
    assert t == [pytest.approx(0.01 + 1.0, rel=1e-12)]


def test_the_bandwidth_factor_scales_the_window_bound_too():
    """SimGrid bounds the LMM variable, whose rate the factor then scales: β · γ / (2L)."""
    t = times(topo([("a", "b", 100, 1000, 1000)]), [(0, "a", "b", 10 * MB)], CM02, 0.5)
    assert t == [pytest.approx(0.1 + 10 * MB / (0.5 * 20_971_520), rel=1e-12)]


def test_two_flows_of_different_rtt_share_a_bottleneck_inversely_to_it():
    """a→c: L = 20 ms; b→c: L = 50 ms; r→c (1 MB/s) shared from 0.05 s on, at rates
    ∝ 1/L: 5/7 and 2/7 MB/s. 1 MB each: a→c ends at 0.05 + 1.4 = 1.45 s, when b→c has
    0.6 MB left, alone at 1 MB/s: 2.05 s."""
    net = topo([("a", "r", 10, 1000, 1000), ("b", "r", 40, 1000, 1000), ("r", "c", 10, 8, 8)])
    t = times(net, [(0.0, "b", "c", MB), (0.03, "a", "c", MB)], CM02)
    assert t == [pytest.approx(2.05, rel=1e-12), pytest.approx(1.45, rel=1e-12)]
    plain = times(net, [(0.0, "b", "c", MB), (0.03, "a", "c", MB)], Sharing())
    assert plain == [pytest.approx(2.05), pytest.approx(2.05)]  # max-min: equal halves


def test_weight_s_adds_to_the_penalty_by_each_links_bandwidth():
    """p = L + Σ weight_S / B_h: a→c 0.02 + 2 · 10⁴/10⁶ = 0.04, b→c 0.02 + 10⁴/10⁷ + 10⁴/10⁶
    = 0.031; on r→c (1 MB/s) the rates are ∝ 1/p, computed here with exact fractions."""
    sharing = Sharing("cm02", weight_s=10_000.0, tcp_gamma=None, crosstraffic=False)
    net = topo([("a", "r", 10, 8, 8), ("b", "r", 10, 80, 80), ("r", "c", 10, 8, 8)])
    t = times(net, [(0.0, "a", "c", MB), (0.0, "b", "c", MB)], sharing)
    p1, p2 = Fraction(4, 100), Fraction(31, 1000)
    x1, x2 = (1 / p1) / (1 / p1 + 1 / p2) * MB, (1 / p2) / (1 / p1 + 1 / p2) * MB
    first = MB / x2  # b→c ends first, then a→c alone at 1 MB/s (its a→r link allows it)
    second = first + (MB - x1 * first) / MB
    assert t == [pytest.approx(0.02 + float(second), rel=1e-12),
                 pytest.approx(0.02 + float(first), rel=1e-12)]  # fmt: skip


def test_cross_traffic_on_a_duplex_link_is_simgrids_lv08_worked_example():
    """SimGrid's Models.rst: 100 kB over a 1 Mbit/s, 10 ms link under LV08 take
    0.01 · 13.01 + 800000 / ((0.97 · 10⁶) / 1.05) = 0.996079 s when the ACKs of a transfer
    the other way share the link (each direction: x + 0.05 · x' ≤ C). Alone, its own ACKs
    load only the other direction: 0.01 · 13.01 + 800000 / (0.97 · 10⁶)."""
    lv08 = Sharing.of("lv08")
    link = topo([("A", "B", 10, 1, 1)])
    both = times(link, [(0, "A", "B", 100_000), (0, "B", "A", 100_000)], lv08, 0.97, 13.01)
    assert both == [pytest.approx(0.996079, abs=5e-7)] * 2
    assert both[0] == pytest.approx(0.01 * 13.01 + 800_000 / (0.97e6 / 1.05), rel=1e-12)
    alone = times(link, [(0, "A", "B", 100_000)], lv08, 0.97, 13.01)
    assert alone == [pytest.approx(0.01 * 13.01 + 800_000 / 0.97e6, rel=1e-12)]


def test_the_weighted_solver_with_unit_penalties_is_plain_max_min():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n_flows, n_hops = int(rng.integers(1, 30)), int(rng.integers(1, 12))
        routes = [rng.choice(n_hops, int(rng.integers(1, n_hops + 1)), replace=False)
                  for _ in range(n_flows)]  # fmt: skip
        entry_hop = np.concatenate(routes)
        entry_flow = np.repeat(np.arange(n_flows), [len(r) for r in routes])
        capacity = rng.uniform(1, 100, n_hops)
        plain = max_min_rates(entry_flow, entry_hop, capacity)
        weighted = weighted_max_min(
            entry_flow, entry_hop, np.ones(entry_hop.size), capacity, np.ones(n_flows),
            np.full(n_flows, np.inf),
        )  # fmt: skip
        np.testing.assert_allclose(weighted, plain, rtol=1e-9)


def test_a_bound_below_the_fair_share_leaves_the_rest_to_the_others():
    """One 10 B/s hop, three flows, penalties 1, 1, 2, the first bounded at 1 B/s: it takes
    1; the others split the 9 left ∝ 1/p: 6 and 3."""
    rates = weighted_max_min(
        np.array([0, 1, 2]), np.array([0, 0, 0]), np.ones(3), np.array([10.0]),
        np.array([1.0, 1.0, 2.0]), np.array([1.0, np.inf, np.inf]),
    )  # fmt: skip
    np.testing.assert_allclose(rates, [1.0, 6.0, 3.0])


def test_scenarios_fill_each_models_defaults_and_refuse_foreign_parameters(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "topology: {generate: tree, edges: 1, ends_per_edge: 2}\n"
        "workload: {kind: traffic, transfers: [{src: end0, dst: cloud0, bytes: 10}]}\n"
    )
    net = load_scenario(path, ["network.model=lv08"]).config.network
    assert (net.latency_factor, net.bandwidth_factor, net.weight_s) == (13.01, 0.97, 20537)
    assert net.tcp_gamma == 4_194_304 and net.crosstraffic is True
    own = load_scenario(path, ["network.model=lv08", "network.latency_factor=1"]).config.network
    assert own.latency_factor == 1 and own.bandwidth_factor == 0.97
    plain = load_scenario(path).config.network
    assert (plain.model, plain.latency_factor, plain.tcp_gamma) == ("maxmin", 1.0, None)
    with pytest.raises(InputError, match="network.tcp_gamma: a parameter of cm02 and lv08, not"):
        load_scenario(path, ["network.tcp_gamma=1000"])


@pytest.mark.parametrize("model", ["maxmin", "cm02"])
def test_re_solving_only_what_a_change_reaches_equals_re_solving_everything(monkeypatch, model):
    """Random forests of flows under plain max-min and cm02 with cross-traffic: the times
    with the reachable-part re-solve equal those of full re-solves (forced here)."""
    from simnet.engine.flows import FlowTable

    rng = np.random.default_rng(11)
    sharing = Sharing.of(model)
    for _ in range(10):
        names = [f"n{i}" for i in range(12)]
        links = [
            (
                names[int(rng.integers(0, i))],
                names[i],
                float(rng.uniform(1, 30)),
                float(rng.uniform(2, 50)),
                float(rng.uniform(2, 50)),
            )
            for i in range(1, 12)
        ]
        sends = []
        for _ in range(20):
            a, b = rng.choice(12, 2, replace=False)
            sends.append((float(rng.uniform(0, 3)), names[a], names[b],
                          int(rng.integers(10_000, 3_000_000))))  # fmt: skip
        part = times(topo(links), sends, sharing)
        with monkeypatch.context() as m:
            m.setattr(FlowTable, "touched_component", lambda self: np.ones(self.n, dtype=bool))
            whole = times(topo(links), sends, sharing)
        np.testing.assert_allclose(part, whole, rtol=1e-9)


def random_lmm(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """A random LMM system: flows over routes of 1–4 of a few hops (so some hops carry one
    flow only), unit or cross-traffic weights, penalties and bounds, some infinite."""
    n_flows, n_hops = int(rng.integers(2, 25)), int(rng.integers(2, 30))
    routes = [rng.choice(n_hops, int(rng.integers(1, min(4, n_hops) + 1)), replace=False)
              for _ in range(n_flows)]  # fmt: skip
    entry_hop = np.concatenate(routes)
    entry_flow = np.repeat(np.arange(n_flows), [len(r) for r in routes])
    entry_weight = rng.choice([1.0, 0.05], entry_hop.size, p=[0.7, 0.3])
    capacity = rng.uniform(1, 100, n_hops)
    penalty = rng.uniform(0.001, 0.2, n_flows)
    bound = np.where(rng.random(n_flows) < 0.5, rng.uniform(0.5, 60, n_flows), np.inf)
    return entry_flow, entry_hop, entry_weight, capacity, penalty, bound


def test_the_weighted_solver_equals_the_exact_level_by_level_definition():
    """Folding one-flow hops into bounds and fixing every bound below the next saturation
    at once change nothing but float rounding (the oracle works in fractions)."""
    rng = np.random.default_rng(24)
    for _ in range(150):
        system = random_lmm(rng)
        exact = [float(r) for r in exact_weighted_max_min(*system)]
        np.testing.assert_allclose(weighted_max_min(*system), exact, rtol=1e-12, atol=0)


def test_a_hop_with_spare_capacity_that_a_re_solve_saturates_is_shared_fairly():
    """Max-min, hops S = 2 MB/s (flows A, C), H = 3 MB/s (A, B), B's access 1.8 MB/s, every
    link 1 ms. C runs alone from 1 to 2 ms (2,000 B); then A = C = 1 MB/s on S and B =
    1.8 MB/s, so H carries 2.8 of 3 MB/s. C leaves at 1.002 s: re-solving only A (reached
    through S) would give it H's spare 1.2 MB/s, but H then saturates and is shared,
    A = B = 1.5 MB/s; A leaves at 2.002 s and B runs at 1.8 MB/s to 3.002 s."""
    links = [("p", "q", 1, 16, 16), ("q", "r", 1, 24, 24), ("z", "q", 1, 14.4, 14.4)]
    sends = [(0, "p", "r", 2_500_000), (0, "p", "q", 1_002_000), (0, "z", "r", 5_100_000)]
    t = times(topo(links), sends, Sharing.of("maxmin"))
    assert t == pytest.approx([2.002, 1.002, 3.002], rel=1e-12)
