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
prediction the result message carries (it answers the upload: ``reply_to``). Requests
arrive as a Poisson process of ``rate_per_s`` over the ends in turn; each node computes
``slots`` jobs at a time, so a busy edge queues. Each server runs a :func:`serve` actor. A
request whose message is dropped, or whose answer does not come within ``timeout_s`` of
the upload's delivery (its server crashed), fails (it is counted, not retried).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from learning.data.dataset import MultimodalSplit
from learning.federated import State
from simnet.actor import DELIVERED, Crashed, NodeApi, ReplyFilter, kind_is
from simnet.protocols.context import Context
from simnet.protocols.payload import payload_split, split_payload
from simnet.wire.message import Message

TERMS = ("feature_s", "upload_s", "compute_s", "download_s")
"""The terms of a request's latency, in seconds, in order."""
PHASE = "inference"
REQUESTS = {"infer_features": "edge", "infer_raw": "cloud"}
"""The request kinds and the placement each belongs to."""
RESULT = "infer_result"
KINDS = (*REQUESTS, RESULT)
"""The message kinds of inference requests: their traffic is the ``inference`` phase."""


@dataclass(frozen=True)
class Server:
    """Where requests of a placement go: the ``node``, its model state and adapter."""

    node: str
    state: State
    adapter: State | None


async def serve(
    ctx: Context,
    node_id: str,
    servers: Callable[[str, str], Server],
    samples: dict[str, MultimodalSplit],
    feature_flops: float,
) -> None:
    """A server's actor: answer every request that comes, each in the background.
    ``servers(placement, end)`` gives the model serving ``end``; a raw request names its
    sample's index among the end's held-out ``samples`` (the server has the media)."""
    node = ctx.node(node_id)
    while True:
        message = await node.receive(kind_is(*REQUESTS))
        placement = REQUESTS[message.kind]
        if placement == "edge":
            sample = payload_split("x", message.payload)
        else:
            sample = samples[message.src].subset([message.meta["sample"]])
        server = servers(placement, message.src)
        node.spawn(_answer(ctx, node, message, server, sample, feature_flops))


async def _answer(
    ctx: Context,
    node: NodeApi,
    request: Message,
    server: Server,
    sample: MultimodalSplit,
    feature_flops: float,
) -> None:
    prediction, forward = await node.job(ctx.learner.infer, server.state, server.adapter, sample)
    extra = feature_flops if request.kind == "infer_raw" else 0.0
    try:
        await node.compute(extra + forward)
    except Crashed:
        return
    node.send(request.src, RESULT, {"y": prediction}, reply_to=request.id)


async def request(
    node: NodeApi,
    placement: str,
    server: str,
    sample: MultimodalSplit,
    index: int,
    feature_flops: float,
    raw_bytes: int,
    timeout_s: float | None,
) -> dict[str, float] | None:
    """One request of end ``node`` for its held-out sample ``index``; returns its latency
    terms (seconds), or ``None`` if it failed (a message dropped, the end down, no answer
    within ``timeout_s`` of the upload's delivery)."""
    marks = [node.now]
    try:
        if placement == "edge":
            await node.compute(feature_flops)
            upload = node.send(server, "infer_features", split_payload("x", sample))
        else:
            upload = node.send(server, "infer_raw", size_bytes=raw_bytes, sample=index)
    except Crashed:
        return None
    marks.append(node.now)
    delivery = await upload
    if delivery.status != DELIVERED:
        return None
    result = await node.receive(ReplyFilter(RESULT, delivery.id), timeout_s)
    if result is None:
        return None
    marks += [delivery.t_recv, result.t_send, node.now]
    return dict(zip(TERMS, np.diff(marks).tolist(), strict=True))


async def run_requests(
    ctx: Context,
    placement: str,
    servers: Callable[[str], str],
    samples: dict[str, MultimodalSplit],
    gaps: np.ndarray,
    feature_flops: float,
    raw_bytes: int,
    timeout_s: float | None,
    advance: Callable[[float], None],
    local: Callable[[str], bool] = lambda end: True,
) -> list[dict[str, float] | None]:
    """Requests ``gaps`` (seconds) apart over the ends of ``samples`` in turn, each for
    the next of its held-out samples, to ``servers(end)``; returns every request's terms,
    ``None`` for a failed one (``advance(1)`` as each ends). Only the ends ``local``
    takes issue theirs (the rest belong to another process of a live run)."""
    ends = list(samples)
    running: list[Awaitable[dict[str, float] | None]] = []
    clock = ctx.node(ends[0])
    for i, gap in enumerate(gaps):
        await clock.sleep(float(gap))
        end = ends[i % len(ends)]
        if not local(end):
            continue
        data = samples[end]
        index = (i // len(ends)) % len(data)
        job = request(
            ctx.node(end), placement, servers(end), data.subset([index]), index, feature_flops,
            raw_bytes, timeout_s,
        )  # fmt: skip
        running.append(ctx.runtime.spawn(_counted(job, advance)))
    return [await handle for handle in running]


async def _counted(
    job: Awaitable[dict[str, float] | None], advance: Callable[[float], None]
) -> dict[str, float] | None:
    result = await job
    advance(1)
    return result


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
