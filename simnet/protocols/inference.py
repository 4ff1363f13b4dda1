"""Inference requests after training: edge placement vs cloud-only (Mega-CE² Table 3).

A request from end device u for one sample, placed at the **edge** e:

    feature_s  = queue + F_feat / flops_u             features extracted on the end
    upload_s   = transfer of the sample's features    u → e (network model)
    compute_s  = queue + F_fwd / flops_e              personalised model (base + adapter)
    download_s = transfer of the prediction           e → u

placed at the **cloud** c (cloud-only): no feature step on the end; ``upload_s`` carries
the raw media (``raw_bytes`` declared bytes) u → c; ``compute_s`` = queue +
(F_feat + F_fwd) / flops_c with the cloud model; ``download_s`` c → u.
F_fwd is the counted forward FLOPs of the real model on that one sample, whose real
prediction the result message carries. Requests arrive as a Poisson process of
``rate_per_s`` over the ends in turn; each node computes ``slots`` jobs at a time, so a
busy edge queues. A request whose message is dropped, or whose server crashes while
computing it, fails (it is counted, not retried).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from learning.data.dataset import MultimodalSplit
from learning.federated import State
from simnet.message import Message
from simnet.network import DELIVERED
from simnet.node import Crashed
from simnet.protocols.context import Context, Process
from simnet.protocols.payload import split_payload

TERMS = ("feature_s", "upload_s", "compute_s", "download_s")
"""The terms of a request's latency, in seconds, in order."""
PHASE = "inference"
KINDS = ("infer_features", "infer_raw", "infer_result")
"""The message kinds of inference requests: their traffic is the ``inference`` phase."""


@dataclass(frozen=True)
class Server:
    """Where requests of a placement go: the ``node``, its model state and adapter."""

    node: str
    state: State
    adapter: State | None


def _exchange(ctx: Context, message: Message) -> Process:
    """Send ``message`` and take it out of the receiver's mailbox once delivered; returns
    whether it was."""
    transfer = yield ctx.node(message.src).send(message)
    if transfer.status != DELIVERED:
        return False
    yield ctx.node(message.dst).receive(lambda m: m.id == transfer.id)
    return True


def request(
    ctx: Context,
    placement: str,
    end: str,
    server: Server,
    sample: MultimodalSplit,
    feature_flops: float,
    raw_bytes: int,
) -> Process:
    """One request; returns its latency terms (seconds), or ``None`` if it failed."""
    env = ctx.world.env
    marks = [env.now]
    try:
        if placement == "edge":
            yield ctx.compute(end, feature_flops)
            marks.append(env.now)
            upload = Message(end, server.node, "infer_features", split_payload("x", sample))
        else:
            marks.append(env.now)
            upload = Message(end, server.node, "infer_raw", size_bytes=raw_bytes)
        if not (yield from _exchange(ctx, upload)):
            return None
        marks.append(env.now)
        prediction, forward = ctx.learner.infer(server.state, server.adapter, sample)
        extra = feature_flops if placement == "cloud" else 0.0
        yield ctx.compute(server.node, extra + forward)
        marks.append(env.now)
        result = Message(server.node, end, "infer_result", {"y": prediction})
        if not (yield from _exchange(ctx, result)):
            return None
    except Crashed:
        return None
    marks.append(env.now)
    return dict(zip(TERMS, np.diff(marks).tolist(), strict=True))


def run_requests(
    ctx: Context,
    placement: str,
    servers: Callable[[str], Server],
    samples: dict[str, MultimodalSplit],
    count: int,
    rate_per_s: float,
    feature_flops: float,
    raw_bytes: int,
    advance: Callable[[float], None],
) -> Process:
    """``count`` Poisson requests over the ends of ``samples`` in turn, each for the next
    of its held-out samples; returns every request's terms, ``None`` for a failed one
    (``advance(1)`` as each ends)."""
    env = ctx.world.env
    ends = list(samples)
    gaps = ctx.world.rng.exponential(1.0 / rate_per_s, size=count)
    running = []
    for i, gap in enumerate(gaps):
        yield env.timeout(float(gap))
        end = ends[i % len(ends)]
        data = samples[end]
        sample = data.subset([(i // len(ends)) % len(data)])
        job = request(ctx, placement, end, servers(end), sample, feature_flops, raw_bytes)
        running.append(env.process(job))
        running[-1].callbacks.append(lambda _: advance(1))
    yield env.all_of(running)
    return [p.value for p in running]


def breakdown(results: list[dict[str, float] | None]) -> dict[str, float]:
    """Mean of each term, and mean and 95th percentile of the total, in seconds, over the
    requests that succeeded; how many there were and how many failed."""
    done = [r for r in results if r is not None]
    out: dict[str, float] = {}
    if done:
        totals = np.array([sum(r.values()) for r in done])
        out = {term: float(np.mean([r[term] for r in done])) for term in TERMS}
        out["total_s"] = float(totals.mean())
        out["total_p95_s"] = float(np.percentile(totals, 95))
    out["requests"] = len(done)
    out["failed"] = len(results) - len(done)
    return out
