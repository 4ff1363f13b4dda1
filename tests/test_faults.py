"""Faults as a feature: node crashes and recoveries, retries, drop-out draws, traces, the
stall guard and the time limit — checked against hand-computed times and counts."""

from __future__ import annotations

import numpy as np
import pytest

from simnet.actor import kind_is
from simnet.engine.faults import Dropout, NodeEvent, RetryConfig, read_trace
from simnet.engine.sim_runtime import SimRuntime
from simnet.engine.world import World
from simnet.errors import InputError
from simnet.protocols.context import Context
from simnet.topology.graph import LinkSpec, NodeSpec, Topology
from simnet.wire.message import Message

MB = 1_000_000  # bytes
RATE = 8.0  # Mbit/s on every link: 1 MB takes 1 s
LATENCY_MS = 10.0


def chain(**world: object) -> World:
    """a — b — c, 10 ms and 8 Mbit/s each way on both links; a computes 2 GFLOP/s."""
    nodes = [NodeSpec("a", "end", 2e9), NodeSpec("b", "edge", 1e12), NodeSpec("c", "cloud", 1e13)]
    links = [LinkSpec("a", "b", LATENCY_MS, RATE, RATE), LinkSpec("b", "c", LATENCY_MS, RATE, RATE)]
    return World(Topology(nodes, links), **world)


def send(w: World, src: str, dst: str, size: int, at: float) -> None:
    def go():
        yield w.env.timeout(at)
        w.nodes[src].send(Message(src, dst, "data", size_bytes=size))

    w.env.process(go())


def test_a_crash_drops_what_goes_to_from_or_through_the_node():
    w = chain(node_events=[NodeEvent(0.5, "b", False), NodeEvent(2.0, "b", True)])
    send(w, "a", "c", MB, 0.0)  # relayed by b: in its bandwidth phase at 0.5 s
    send(w, "a", "b", 1_000, 0.2)  # shares a→b with the relay: half of 1 MB/s
    send(w, "c", "b", MB, 0.4)  # to b: in flight at 0.5 s
    send(w, "a", "b", 1_000, 1.0)  # b is down: dropped at once
    send(w, "c", "a", 1_000, 1.5)  # through b, down: dropped at once
    send(w, "a", "c", MB, 2.0)  # b is back: 2 × 10 ms, then 1 s at 1 MB/s
    w.run()
    got = [(t.src, t.dst, t.status, t.t_recv, t.t_drop) for t in w.network.transfers]
    assert got == [
        ("a", "c", "dropped", None, 0.5),
        ("a", "b", "delivered", pytest.approx(0.2 + 0.01 + 1_000 / (MB / 2)), None),
        ("c", "b", "dropped", None, 0.5),
        ("a", "b", "dropped", None, 1.0),
        ("c", "a", "dropped", None, 1.5),
        ("a", "c", "delivered", pytest.approx(2.0 + 0.02 + 1.0), None),
    ]
    assert w.faults == {"crash": 1, "recovery": 1}
    net = w.network
    assert net.bytes_sent == net.bytes_delivered + net.bytes_dropped
    # by 0.5 s the relay had carried (0.5 − 0.02) s × 1 MB/s, less the 1,000 B it left to
    # the small message while they shared a→b; then the small message, then the last 1 MB
    assert net.counts().link_bytes[("a", "b")] == pytest.approx(0.48 * MB - 1_000 + 1_000 + MB)
    assert net.counts().link_bytes[("b", "c")] == pytest.approx(0.48 * MB - 1_000 + MB)


def test_a_crash_stops_jobs_and_actors_empties_the_mailbox_and_recovery_restarts():
    w = chain(node_events=[NodeEvent(0.4, "a", False), NodeEvent(1.0, "a", True)])
    node = w.nodes["a"]
    log: list[tuple[str, float]] = []

    def actor():
        log.append(("start", w.env.now))
        yield node.compute(2e9)  # 1 s at 2 GFLOP/s
        log.append(("computed", w.env.now))
        message = yield node.receive(kind_is("data"))
        log.append((message.meta["n"], w.env.now))

    node.start(actor(), restart=actor)
    w.nodes["b"].send(Message("b", "a", "data", meta={"n": "before"}))  # in a's mailbox: lost
    w.env.process(_later(w, 0.6, lambda: w.nodes["b"].send(Message("b", "a", "data"))))
    w.env.process(
        _later(w, 2.5, lambda: w.nodes["b"].send(Message("b", "a", "data", meta={"n": "after"})))
    )
    w.run()
    delivered = w.network.transfers[2].t_recv
    assert log == [
        ("start", 0.0),
        ("start", 1.0),
        ("computed", 2.0),
        ("after", delivered),
    ]
    assert [t.status for t in w.network.transfers] == ["delivered", "dropped", "delivered"]
    assert node.busy_s == pytest.approx(0.4 + 1.0)  # the interrupted job counts what it ran


def _later(w: World, at: float, action):
    yield w.env.timeout(at)
    action()


@pytest.mark.parametrize(
    ("up_at", "sends", "outcome", "counts"),
    [
        # down until 1.2 s: attempts at 0, 0.5, 1.5 (delays 0.5, 1.0) → the third gets in
        (1.2, [0.0, 0.5, 1.5], True, {"retry": 2}),
        # never up: attempts at 0, 0.5, 1.5, 3.5, then give up
        (None, [0.0, 0.5, 1.5, 3.5], False, {"retry": 3, "gave_up": 1}),
    ],
)
def test_deliver_resends_with_backoff_then_gives_up(up_at, sends, outcome, counts):
    events = [NodeEvent(0.0, "c", False)] + ([NodeEvent(up_at, "c", True)] if up_at else [])
    w = chain(node_events=events, retry=RetryConfig(timeout_s=0.5, attempts=3))
    runtime = SimRuntime(w)
    ctx = Context(runtime, learner=None, seed=0)
    result = []

    async def sender():
        result.append(await ctx.deliver("a", "c", "update"))

    runtime.spawn(sender())
    w.run()
    assert result == [outcome]
    assert [t.t_send for t in w.network.transfers] == sends
    assert dict(w.faults) == {"crash": 1, **counts, **({"recovery": 1} if up_at else {})}


def test_dropout_draws_depend_only_on_seed_node_and_round():
    draw = Dropout("end", 0.2, seed=7)
    first = [draw.sits_out(node, r) for node in range(40) for r in range(50)]
    assert first == [draw.sits_out(node, r) for node in range(40) for r in range(50)]
    assert np.mean(first) == pytest.approx(0.2, abs=0.03)
    other = [Dropout("end", 0.2, seed=8).sits_out(n, r) for n in range(40) for r in range(50)]
    assert other != first
    assert not any(Dropout("end", 0.0, seed=7).sits_out(n, 1) for n in range(100))
    assert all(Dropout("end", 1.0, seed=7).sits_out(n, 1) for n in range(100))


def test_world_counts_dropouts_of_its_tier_only():
    w = chain(dropout=Dropout("end", 1.0, seed=0))
    assert w.sits_out("a", 1) and not w.sits_out("b", 1)
    assert w.faults == {"dropout": 1}


def test_trace_file_gives_down_and_up_events(tmp_path):
    topo = chain().topology
    path = tmp_path / "trace.csv"
    path.write_text("node,t_down,t_up\na,1.5,4\nb,2,\n")
    assert read_trace(path, "s.yaml", topo) == [
        NodeEvent(1.5, "a", False),
        NodeEvent(4.0, "a", True),
        NodeEvent(2.0, "b", False),
    ]
    for bad, message in [
        ("node,t_down,t_up\nzz,1,2\n", "unknown node 'zz'"),
        ("node,t_down,t_up\na,3,2\n", "t_up must be after t_down"),
        ("node,t_down,t_up\na,inf,\n", "line 2, t_down: must be finite"),
    ]:
        path.write_text(bad)
        with pytest.raises(InputError, match=message) as info:
            read_trace(path, "s.yaml", topo)
        assert info.value.field == "faults.trace"


def test_the_clock_guard_reports_a_stall():
    w = chain()

    def spin():
        while True:
            yield w.env.timeout(0)

    w.env.process(spin())
    reason = w.run(stall_events=1_000)
    assert reason == "the clock stalled at t = 0 s (1,001 events)"
