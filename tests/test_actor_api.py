"""The actor API: protocols see only it, and the SimPy runtime drives coroutines exactly
as SimPy processes (same events, same times)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import simpy

from simnet.actor import DELIVERED, Crashed, kind_is
from simnet.engine.faults import NodeEvent
from simnet.engine.sim_runtime import SimRuntime, drive
from simnet.engine.world import World
from simnet.topology.graph import LinkSpec, NodeSpec, Topology

PROTOCOLS = sorted((Path(__file__).parents[1] / "simnet" / "protocols").glob("*.py"))
FORBIDDEN = ("simpy", "zmq", "simnet.engine", "simnet.live")


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.name)
def test_protocol_modules_import_only_the_actor_api(path):
    tree = ast.parse(path.read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [n for n in names if n.startswith(FORBIDDEN)]


def test_importing_every_protocol_loads_neither_simpy_nor_zmq():
    modules = ", ".join(f"simnet.protocols.{p.stem}" for p in PROTOCOLS if p.stem != "__init__")
    code = f"import sys, {modules}; print(sorted(m for m in sys.modules if m in ('simpy', 'zmq')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def chain(**kw) -> World:
    """a — b: 10 ms, 8 Mbit/s each way; b computes 2 GFLOP/s."""
    nodes = [NodeSpec("a", "end", 1e9), NodeSpec("b", "edge", 2e9)]
    return World(Topology(nodes, [LinkSpec("a", "b", 10, 8, 8)]), **kw)


def test_a_coroutine_sees_the_analytic_times():
    """1 MB over 8 Mbit/s after 10 ms: t_recv = 0.01 + 1.0 s; 4e9 FLOPs at 2e9 FLOP/s: 2 s;
    a receive timing out after 0.5 s gives None at t = 3.51 s."""
    w = chain()
    rt = SimRuntime(w)
    seen = []

    async def sender():
        delivery = await rt.node("a").send("b", "data", size_bytes=1_000_000, round=1)
        seen.append(("delivered", delivery.status, delivery.t_recv))

    async def receiver():
        b = rt.node("b")
        message = await b.receive(kind_is("data", round=1))
        seen.append(("got", message.src, b.now))
        took = await b.compute(4e9)
        seen.append(("computed", took, b.now))
        seen.append(("timeout", await b.receive(kind_is("never"), 0.5), b.now))

    rt.start("a", sender)
    rt.start("b", receiver)
    w.run()
    assert seen == [
        ("delivered", DELIVERED, pytest.approx(1.01)),
        ("got", "a", pytest.approx(1.01)),
        ("computed", 2.0, pytest.approx(3.01)),
        ("timeout", None, pytest.approx(3.51)),
    ]


def test_a_crash_stops_an_actor_and_recovery_restarts_its_entry():
    """b goes down at 1 s during a 2 s job: the actor stops there (it never logs "done");
    b comes back at 5 s and its entry runs again from the start."""
    w = chain(node_events=[NodeEvent(1.0, "b", False), NodeEvent(5.0, "b", True)])
    rt = SimRuntime(w)
    log = []

    async def worker():
        b = rt.node("b")
        log.append(("start", b.now))
        await b.compute(4e9)
        log.append(("done", b.now))

    rt.start("b", worker)
    w.run()
    assert log == [("start", 0.0), ("start", 5.0), ("done", 7.0)]
    assert w.nodes["b"].busy_s == pytest.approx(1.0 + 2.0)


def test_a_job_on_a_node_that_is_down_raises_crashed_in_the_coroutine():
    w = chain(node_events=[NodeEvent(0.0, "b", False)])
    rt = SimRuntime(w)
    log = []

    async def driver():  # tied to no node: the crash does not stop it
        await rt.node("a").sleep(1.0)
        try:
            await rt.node("b").compute(1e9)
        except Crashed:
            log.append(("crashed", rt.now))

    rt.spawn(driver())
    w.run()
    assert log == [("crashed", 1.0)]


def test_drive_yields_the_same_events_as_the_process_it_replaces():
    env = simpy.Environment()

    def as_generator(out):
        yield env.timeout(1.5)
        value = yield env.timeout(0.25, value="v")
        out.append((env.now, value))

    class Wait:
        def __init__(self, event):
            self.event = event

        def __await__(self):
            return (yield self.event)

    async def as_coroutine(out):
        await Wait(env.timeout(1.5))
        value = await Wait(env.timeout(0.25, value="v"))
        out.append((env.now, value))

    a, b = [], []
    env.process(as_generator(a))
    env.process(drive(as_coroutine(b)))
    env.run()
    assert a == b == [(1.75, "v")]


def test_importing_the_actor_api_loads_no_torch_learning_simpy_or_zmq():
    code = (
        "import sys, simnet.actor; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'learning', 'simpy', 'zmq')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def gather_run(sends: list[tuple[float, str]], wanted: int, **kw) -> tuple[list, float]:
    """``a`` sends 1000-byte messages of the given kinds at the given times; ``b`` gathers
    ``data`` ones. Each takes 0.01 + 1000 / 1e6 = 0.011 s."""
    w = chain()
    rt = SimRuntime(w)
    seen: dict[str, object] = {}

    async def sender():
        a = rt.node("a")
        for at, kind in sends:
            await a.sleep(at - a.now)
            a.send("b", kind, size_bytes=1000)

    async def receiver():
        b = rt.node("b")
        got = await b.gather(kind_is("data"), wanted, **kw)
        seen["got"], seen["t"] = [m.kind for m in got], b.now

    rt.start("a", sender)
    rt.start("b", receiver)
    w.run()
    return seen["got"], seen["t"]


def test_gather_returns_at_the_nth_arrival():
    got, t = gather_run([(0.0, "data"), (1.0, "data"), (2.0, "data")], 2, deadline_s=5.0)
    assert got == ["data", "data"] and t == pytest.approx(1.011)


def test_gather_stops_at_the_deadline_with_what_came():
    got, t = gather_run([(0.0, "data"), (3.0, "data")], 2, deadline_s=2.0)
    assert got == ["data"] and t == pytest.approx(2.0)


def test_gather_deadline_from_the_first_counted_message():
    """First arrival at 1.011 s; deadline 1.5 s after it: 2.511 s, before the 3.011 one."""
    got, t = gather_run([(1.0, "data"), (3.0, "data")], 2, deadline_s=1.5, from_first=True)
    assert got == ["data"] and t == pytest.approx(2.511)


def test_messages_that_do_not_count_do_not_end_a_gather():
    seen = []

    def counts(message):
        seen.append(message.id)
        return len(seen) % 2 == 0  # every second one counts

    got, t = gather_run([(0.0, "data"), (1.0, "data"), (2.0, "data"), (3.0, "data")], 2,
                        counts=counts)  # fmt: skip
    assert len(got) == 2 and len(seen) == 4 and t == pytest.approx(3.011)
