"""Live mode against hostile peers: a flood of bad frames, forged sources and acks under
CURVE, a link that drops a message, a peer that cannot be reached."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import zlib
from pathlib import Path

import yaml
import zmq
import zmq.asyncio
from test_live import DUMBBELL, MB, messages, write
from test_live_multi import free_ports

from simnet.actor import DROPPED
from simnet.config.scenario import load_scenario
from simnet.live.host import HostPlan, LiveHost
from simnet.live.keys import load_public, load_secret, write_keys
from simnet.live.launch import live_run
from simnet.live.mailbox import Mailbox, start_authenticator
from simnet.live.router import EMPTY_CRC, Limits, Reject, Resolve, Router
from simnet.live.wire import Header
from simnet.runner import run_scenario

FLOOD = Path(__file__).parents[1] / "bench" / "flood.py"
"""The hostile peer (it sends every kind of bad frame it knows)."""


def test_a_live_run_under_a_flood_of_hostile_frames_delivers_what_a_clean_run_does(tmp_path):
    path = write(tmp_path, DUMBBELL)
    nodes = [n["id"] for n in DUMBBELL["topology"]["nodes"]]
    ports = dict(zip(nodes, free_ports(len(nodes)), strict=True))
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(yaml.safe_dump({n: f"127.0.0.1:{p}" for n, p in ports.items()}))
    mailboxes = [f"{n}=tcp://127.0.0.1:{p}" for n, p in ports.items()]
    flooder = subprocess.Popen(
        [sys.executable, str(FLOOD), "60", *mailboxes], stdout=subprocess.PIPE, text=True
    )
    try:
        live = live_run(str(path), [], None, tmp_path / "live", processes=2, hosts=hosts,
                        progress=False)  # fmt: skip
    finally:
        flooder.terminate()  # it floods until the run has ended
        sent = int(flooder.communicate(timeout=30)[0] or 0)
    sim = run_scenario(load_scenario(path), tmp_path / "sim", progress=False, figures=False)
    assert sent > 100
    assert live["complete"]
    a, b = messages(tmp_path / "sim"), messages(tmp_path / "live")
    assert list(b.index) == list(a.index) and (b["status"] == "delivered").all()
    assert list(a["bytes"]) == list(b["bytes"]) and live["bytes_delivered"] == sim["bytes_total"]
    rejected = live["live"]["rejected_frames"]
    assert sum(rejected.values()) > 0 and {"hop", "checksum"} & set(rejected), rejected


def test_under_curve_a_node_key_cannot_claim_another_source_nor_forge_an_ack(tmp_path):
    """Node a0 (with its own valid key) sends to b0's mailbox a data frame that claims to
    come from r (the node before b0 on the route) and an ack for a message b0 sent to
    r: the mailbox refuses the first (its key is a0's), the router the second."""
    keys = tmp_path / "keys"
    write_keys(keys, ["a0", "b0", "r"])
    got: dict[str, object] = {}

    async def main() -> None:
        ctx = zmq.asyncio.Context()
        auth = start_authenticator(ctx, keys)
        try:
            b0 = Mailbox(ctx, "b0", "tcp://127.0.0.1:*", {}, keys=keys)
            a0 = Mailbox(ctx, "a0", "tcp://127.0.0.1:*", {"b0": b0.endpoint}, keys=keys)
            data = b"xyz"
            claim = Header("data", "r", "b0", "k", 1, 3, 0, zlib.crc32(data), 0.0, None, "r")
            await a0.send("b0", claim, data)
            # an ack that passes the mailbox (hop = a0, a0's own key) but is no ack of b0's
            ack = Header("ack", "b0", "r", "k", 9, 0, 0, EMPTY_CRC, 0.0, None, "a0")
            await a0.send("b0", ack, b"")
            header, body = await asyncio.wait_for(b0.recv(), 5)
            route = {("b0", "r"): ("b0", "r"), ("r", "b0"): ("r", "b0")}
            router = Router(["b0"], ["a0", "b0", "r"], lambda s, d: route[s, d], False,
                            Limits(1000, 2000, 4000, 1.0), lambda b: None)  # fmt: skip
            router.sent(9, "b0", "r")
            got["actions"] = router.frame("b0", header.hop, header, body, 0.0)
            got["mailbox"] = dict(b0.rejected)
            got["pending"] = dict(router.pending)
            await a0.close()
            await b0.close()
        finally:
            auth.stop()
            ctx.destroy(linger=0)

    asyncio.run(main())
    assert got["mailbox"] == {"forged": 1}
    assert got["actions"] == [Reject("hop")]  # an ack for b0 → r must come from r
    assert got["pending"] == {9: ("b0", "r")}
    assert load_public(keys, "a0") == load_secret(keys, "a0")[0]


def test_a_message_dropped_by_a_link_ends_as_in_the_simulation(tmp_path):
    """The l – r link goes down while the first transfers cross it: in both runs they are
    dropped, the later transfer (after it comes back up) is delivered."""
    scenario = {**DUMBBELL, "name": "live_linkdown"}
    scenario["network"] = {"events": [{"at": 0.3, "a": "l", "b": "r", "state": "down"},
                                      {"at": 0.6, "a": "l", "b": "r", "state": "up"}]}  # fmt: skip
    scenario["workload"] = {"kind": "traffic", "transfers": [
        {"src": "a0", "dst": "b0", "bytes": 2 * MB, "at": 0.0},
        {"src": "a0", "dst": "b1", "bytes": 300_000, "at": 1.0},
    ]}  # fmt: skip
    path = write(tmp_path, scenario)
    sim = run_scenario(load_scenario(path), tmp_path / "sim", progress=False, figures=False)
    live = live_run(str(path), [], None, tmp_path / "live", processes=3, progress=False)
    a, b = messages(tmp_path / "sim"), messages(tmp_path / "live")
    assert list(a["status"]) == list(b["status"]) == ["dropped", "delivered"]
    assert live["complete"] and sim["complete"]
    assert abs(b.loc[0, "t_drop"] - 0.3) < 0.2


def test_an_unreachable_peer_drops_the_message_and_tells_its_sender():
    """x cannot hand e's message on to c: the message is dropped, e's send resolves as
    dropped (through a drop notice when e is elsewhere); a lost ack is only counted."""
    line = ("e", "x", "c")

    def path(a: str, b: str) -> tuple[str, ...]:
        i, j = line.index(a), line.index(b)
        return line[i : j + 1] if i <= j else line[j : i + 1][::-1]

    limits = Limits(1000, 2000, 4000, 1.0)
    edge = Router(["x"], line, path, False, limits, lambda b: None)
    end = Router(["e"], line, path, False, limits, lambda b: None)
    end.sent(4, "e", "c")
    data = Header("data", "e", "c", "k", 4, 10, 0, 0, 0.0, None, "x")
    (notice,) = edge.unreachable("x", data, now=1.5)
    assert (notice.at, notice.nxt, notice.header.type) == ("x", "e", "drop")
    assert end.frame("e", "x", notice.header, b"", 1.6) == [Resolve(4, DROPPED, 1.5)]
    ack = Header("ack", "e", "c", "k", 4, 0, 0, EMPTY_CRC, 0.0, None, "x")
    assert edge.unreachable("x", ack, now=2.0) == [Reject("ack unreachable")]


def test_an_exception_in_a_task_or_a_loop_callback_ends_the_run_naming_the_node(tmp_path):
    """The first failure of a host's actors or callbacks is kept, naming its node; the
    serve loop raises it within one report period (never a wait for the time limit)."""
    path = write(tmp_path, DUMBBELL)
    nodes = [n["id"] for n in DUMBBELL["topology"]["nodes"]]
    plan = HostPlan(str(path), (), None, 0, {n: 0 for n in nodes}, "app", None, None)

    async def main() -> tuple[str, str]:
        first = LiveHost(plan)

        async def broken() -> None:
            raise ValueError("boom")

        task = first.task(broken(), "a0")
        await asyncio.wait([task])
        second = LiveHost(plan)
        second._guarded("l", lambda: 1 / 0)
        second._guarded("r", lambda: 1 / 0)  # only the first failure is kept
        return str(first.error), str(second.error)

    assert asyncio.run(main()) == (
        "node a0: ValueError: boom",
        "node l: ZeroDivisionError: division by zero",
    )
