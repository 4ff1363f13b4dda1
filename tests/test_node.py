"""Nodes: compute time from FLOPs, slots, and real messages through the network."""

from __future__ import annotations

import pytest
import torch

from simnet.engine.world import World
from simnet.topology.graph import LinkSpec, NodeSpec, Topology
from simnet.wire.codecs import get_codec
from simnet.wire.message import Message, encode


def world(slots: int = 1) -> World:
    nodes = [NodeSpec("dev", "end", 2.0e9, slots), NodeSpec("srv", "edge", 1.0e12)]
    return World(Topology(nodes, [LinkSpec("dev", "srv", 10.0, 8.0, 8.0)]))


def test_compute_takes_flops_over_flops_per_second():
    w = world()
    done = []

    def job():
        duration = yield w.nodes["dev"].compute(3.0e9)
        done.append((w.env.now, duration))

    w.env.process(job())
    w.env.run()
    assert done == [(pytest.approx(1.5), pytest.approx(1.5))]


@pytest.mark.parametrize(("slots", "ends"), [(1, [1.0, 2.0, 3.0]), (2, [1.0, 1.0, 2.0])])
def test_jobs_beyond_slots_queue(slots, ends):
    w = world(slots)
    finished = []

    def job():
        yield w.nodes["dev"].compute(2.0e9)
        finished.append(w.env.now)

    for _ in range(3):
        w.env.process(job())
    w.env.run()
    assert finished == [pytest.approx(t) for t in ends]
    assert w.nodes["dev"].busy_s == pytest.approx(3.0)


def test_message_arrives_decoded_after_its_encoded_size_crosses_the_link():
    w = world()
    payload = {"w": torch.arange(100_000, dtype=torch.float32)}
    message = Message("dev", "srv", "update", payload, meta={"round": 3})
    size = len(encode(message))
    got = []

    def server():
        msg = yield w.nodes["srv"].receive()
        got.append((w.env.now, msg))

    w.env.process(server())
    w.nodes["dev"].send(message)
    w.env.run()
    ((t, received),) = got
    transfer = w.network.transfers[0]
    assert transfer.size == size > 400_000
    assert t == pytest.approx(0.010 + size / 1e6)  # 8 Mbit/s = 1e6 bytes/s
    assert torch.equal(received.payload["w"], payload["w"])
    assert received.meta == {"round": 3} and received.kind == "update"
    assert received.id == transfer.id == 0


def test_codec_shrinks_the_wire_size_and_the_receiver_gets_decoded_values():
    w = world()
    payload = {"w": torch.linspace(-1, 1, 50_000)}
    w.nodes["dev"].send(Message("dev", "srv", "update", payload), codec=get_codec("int8"))
    w.env.run()
    transfer = w.network.transfers[0]
    received = w.nodes["srv"].mailbox.items[0]
    full = len(encode(Message("dev", "srv", "update", payload)))
    assert transfer.size < full / 3
    assert received.payload["w"].dtype == torch.float32
    assert (received.payload["w"] - payload["w"]).abs().max() <= (1 / 127) / 2 + 1e-6


def test_cannot_send_as_another_node():
    w = world()
    with pytest.raises(ValueError, match="cannot send"):
        w.nodes["dev"].send(Message("srv", "dev", "x", size_bytes=1))


def test_world_codec_is_the_default_for_every_send():
    nodes = [NodeSpec("dev", "end", 2.0e9), NodeSpec("srv", "edge", 1.0e12)]
    w = World(Topology(nodes, [LinkSpec("dev", "srv", 10.0, 8.0, 8.0)]), codec=get_codec("fp16"))
    payload = {"w": torch.ones(10_000)}
    w.nodes["dev"].send(Message("dev", "srv", "update", payload))
    w.env.run()
    fp32 = len(encode(Message("dev", "srv", "update", payload)))
    fp16 = len(encode(Message("dev", "srv", "update", payload), get_codec("fp16")))
    assert w.network.transfers[0].size == fp16 < fp32
