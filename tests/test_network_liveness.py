"""The clock always advances: every message is delivered at its analytic time, in few events.

A wake-up scheduled for a flow's completion must complete it, whatever float rounding left
of its bytes; otherwise a small message late in a run leaves a residue whose delay is below
half a float step of ``now`` and the same wake-up repeats forever (docs/design.md,
rule 7). Every run here is bounded by a number of SimPy events, so a livelock fails
instead of hanging.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import simpy

from simnet.engine.network import DELIVERED, Network
from simnet.topology.graph import LinkSpec, NodeSpec, Topology, mbps_to_bytes_per_s

EVENTS_PER_MESSAGE = 6  # send timer, latency, done, and a wake-up per start and per end
REL = 1e-9


def run_bounded(env: simpy.Environment, max_events: int) -> int:
    """Run ``env`` until it drains; fail (instead of hanging) past ``max_events`` events."""
    events = 0
    while env.peek() != float("inf"):
        assert events < max_events, f"livelock: clock stuck at t={env.now!r}"
        env.step()
        events += 1
    return events


def disjoint_links(links: list[tuple[float, float]]) -> Topology:
    """One link ``s{i} - d{i}`` per (latency_ms, mbps), no two sharing a node."""
    nodes = [NodeSpec(f"{end}{i}", "edge", 1e9) for i in range(len(links)) for end in "sd"]
    return Topology(
        nodes, [LinkSpec(f"s{i}", f"d{i}", lat, bw, bw) for i, (lat, bw) in enumerate(links)]
    )


def simulate(topology: Topology, sends: list[tuple[float, str, str, int]]) -> tuple[Network, int]:
    """Run (t_send, src, dst, bytes) sends to the end; the network and the events it took.

    ``net.transfers`` is put back in the order of ``sends``.
    """
    env = simpy.Environment()
    net = Network(env, topology)
    for i, (at, src, dst, size) in enumerate(sends):
        env.timeout(at).callbacks.append(
            lambda _, s=src, d=dst, n=size, i=i: net.send(s, d, n, data=i)
        )
    events = run_bounded(env, EVENTS_PER_MESSAGE * len(sends) + 10)
    assert net.in_flight == 0
    assert all(t.status == DELIVERED for t in net.transfers)
    assert net.bytes_delivered == net.bytes_sent
    assert all(t.remaining == 0.0 for t in net.transfers)
    assert sum(net.counts().link_bytes.values()) == sum(t.size * len(t.hops) for t in net.transfers)
    net.transfers.sort(key=lambda t: t.data)
    return net, events


def assert_on_time(got: float, t_send: float, want: float) -> None:
    """``got`` is ``want`` to 1e-9 of the transfer's duration, plus a few float steps of the
    clock (tighter than 1e-9 of ``t``, which late in a run would hide a lost transfer)."""
    assert abs(got - want) <= REL * (want - t_send) + 4 * np.spacing(want), (got, want)


def alone(t_send: float, latency_ms: float, mbps: float, size: float) -> float:
    """Analytic reception time of a message alone on its link."""
    return t_send + latency_ms / 1e3 + size / mbps_to_bytes_per_s(mbps)


def test_small_message_late_in_a_run_arrives():
    # The reported livelock: 300 B over 100 Mbit/s, 30 ms, sent at t = 1234.567 s.
    net, events = simulate(disjoint_links([(30, 100)]), [(1234.567, "s0", "d0", 300)])
    assert_on_time(net.transfers[0].t_recv, 1234.567, alone(1234.567, 30, 100, 300))
    assert events <= EVENTS_PER_MESSAGE


@pytest.mark.parametrize("mbps", [100, 250, 1000])
@pytest.mark.parametrize("t_send", [51.3, 777.77, 12345.678, 999_999.9])
def test_few_hundred_bytes_on_fast_links_late(t_send, mbps):
    sizes = [64, 150, 300, 512, 777, 1000]
    links = [(0.1 * i, mbps) for i in range(len(sizes))]
    sends = [(t_send, f"s{i}", f"d{i}", size) for i, size in enumerate(sizes)]
    net, _ = simulate(disjoint_links(links), sends)
    for t, (lat, bw) in zip(net.transfers, links, strict=True):
        assert_on_time(t.t_recv, t_send, alone(t_send, lat, bw, t.size))


@pytest.mark.parametrize("batch", range(30))
def test_random_single_flows_arrive_at_the_analytic_time(batch):
    """3000 independent flows, 100 per env on disjoint links, with bounded events.

    Flows of a batch re-allocate each other; their times do not change (disjoint links),
    and small batches keep the number of flows active at once, hence the cost, low.
    """
    rng = np.random.default_rng([20240611, batch])
    n = 100
    sizes = np.floor(10 ** rng.uniform(0, 8, n)).astype(int)  # 1 B .. 100 MB
    t_send = 10 ** rng.uniform(-6, 6, n)  # 1 µs .. 10⁶ s
    t_send[::30] = 0.0
    mbps = 10 ** rng.uniform(-1, 4, n)  # 0.1 .. 10 000 Mbit/s
    latency_ms = 10 ** rng.uniform(-3, 3, n)
    latency_ms[::7] = 0.0
    links = list(zip(latency_ms.tolist(), mbps.tolist(), strict=True))
    sends = [(float(t_send[i]), f"s{i}", f"d{i}", int(sizes[i])) for i in range(n)]
    net, events = simulate(disjoint_links(links), sends)
    for i, t in enumerate(net.transfers):
        assert_on_time(t.t_recv, t_send[i], alone(t_send[i], *links[i], sizes[i]))
    assert events <= EVENTS_PER_MESSAGE * n


def processor_sharing(active_at: list[float], sizes: list[int], capacity: float) -> list[Fraction]:
    """Exact reception times of flows sharing one link equally (max-min on a single link)."""
    start = [Fraction(a) for a in active_at]
    left = {i: Fraction(s) for i, s in enumerate(sizes)}
    cap, now, done, active = Fraction(capacity), min(start), {}, set()
    while left:
        active |= {i for i in left if start[i] <= now}
        if not active:  # idle link: jump to the next start
            now = min(start[i] for i in left)
            continue
        share = cap / len(active)
        upcoming = [start[i] for i in left if i not in active]
        end = now + min(left[i] for i in active) / share
        step = min([end, *upcoming])
        for i in active:
            left[i] -= share * (step - now)
        now = step
        for i in [i for i in active if left[i] <= 0]:
            done[i] = now
            del left[i]
            active.discard(i)
    return [done[i] for i in range(len(sizes))]


@pytest.mark.parametrize(
    ("case", "mbps", "latency_ms", "sends", "want"),
    [
        # 1 MB/s. f1 alone 0-1 s sends 1 MB; 1-1.5 s f1, f2 at 0.5 MB/s (f1 1.75, f2 0.75 MB
        # left); from 1.5 s three at 1/3 MB/s: f3 (0.5 MB) ends at 3 s, f2 then has 0.25 MB
        # and f1 1.25 MB; two at 0.5 MB/s: f2 ends at 3.5 s; f1's last 1 MB alone: 4.5 s.
        (
            "three staggered",
            8,
            0,
            [(0, 3_000_000), (1, 1_000_000), (1.5, 500_000)],
            [4.5, 3.5, 3.0],
        ),
        # 1 MB/s. f1 (2 MB) alone 0-1 s; f2 (1 MB) joins with 1 MB left each: both at
        # 0.5 MB/s, both end at 3 s.
        ("tie", 8, 0, [(0, 2_000_000), (1, 1_000_000)], [3.0, 3.0]),
        # 12.5 MB/s, 30 ms, late and small. f1 (1000 B) active at 1000.03 s, alone 20 µs
        # (250 B); f2 (500 B) joins: both at 6.25 MB/s, f2 ends 80 µs later at 1000.0301 s,
        # f1's last 250 B alone take 20 µs: 1000.03012 s.
        ("late small", 100, 30, [(1000.0, 1000), (1000.00002, 500)], [1000.03012, 1000.0301]),
    ],
)
def test_staggered_flows_sharing_a_link_by_hand(case, mbps, latency_ms, sends, want):
    topology = disjoint_links([(latency_ms, mbps)])
    net, events = simulate(topology, [(at, "s0", "d0", size) for at, size in sends])
    for t, w in zip(net.transfers, want, strict=True):
        assert_on_time(t.t_recv, t.t_send, w)
    assert events <= EVENTS_PER_MESSAGE * len(sends)


@pytest.mark.parametrize("batch", range(6))
def test_random_staggered_flows_sharing_a_link(batch):
    """2-3 flows per link with staggered starts against exact processor sharing (600 links)."""
    rng = np.random.default_rng([7, batch])
    n_links = 100
    links, sends, groups = [], [], []
    for i in range(n_links):
        lat, bw = float(10 ** rng.uniform(-2, 2)), float(10 ** rng.uniform(-1, 4))
        k = int(rng.integers(2, 4))
        t0 = float(10 ** rng.uniform(-3, 6))
        sizes = np.floor(10 ** rng.uniform(0, 7, k)).astype(int).tolist()
        # Stagger by a fraction of the first flow's time alone, so that flows overlap.
        gaps = rng.uniform(0, 1.2, k - 1) * sizes[0] / mbps_to_bytes_per_s(bw)
        starts = [t0, *(t0 + np.cumsum(gaps)).tolist()]
        links.append((lat, bw))
        groups.append([len(sends) + j for j in range(k)])
        sends += [(at, f"s{i}", f"d{i}", size) for at, size in zip(starts, sizes, strict=True)]
    net, events = simulate(disjoint_links(links), sends)
    for (lat, bw), group in zip(links, groups, strict=True):
        active_at = [sends[j][0] + lat / 1e3 for j in group]
        want = processor_sharing(active_at, [sends[j][3] for j in group], mbps_to_bytes_per_s(bw))
        for j, w in zip(group, want, strict=True):
            assert_on_time(net.transfers[j].t_recv, sends[j][0], float(w))
    assert events <= EVENTS_PER_MESSAGE * len(sends)
