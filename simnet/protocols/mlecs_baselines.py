"""The ML-ECS paper's other baselines as actors: Co-PLMs, FediLoRA and FedMLLM.

They share ML-ECS's round (:mod:`simnet.protocols.mlecs`): the server opens round r with
``round_start`` to every device, gathers the ``lora_update`` s (all of them, or those in by
``deadline_s``), merges them — charged 2 FLOPs per received element
(:meth:`~learning.mlecs.Mlecs.averaging_flops`) — and sends each device whose update it
merged its part of the result as ``server_lora``; a device loads the newest ``server_lora``
it has before training, sits out a round it drops out of, and evaluates its own model on
its private test data after training. What differs (the maths in
:mod:`learning.mlecs_baselines`):

* ``co_plms`` — a device keeps its SLM (never sent) and a proxy model; it trains both by
  mutual learning on its private data and uploads the proxy's every trainable tensor. The
  server averages the proxies key by key (weights: samples) into its SLM-backbone proxy,
  trains it with its LLM by mutual learning on the public set, evaluates its LLM on the
  public test set and sends the proxy back; a device takes it as its proxy.
* ``fedilora`` — devices train locally (LoRA rank 24) and upload their LoRA; the server
  averages dimension-wise (weights: samples) and sends each device the first r_j
  dimensions; a device edits its LoRA layer by layer with the global one (charged
  :func:`~learning.mlecs_baselines.editing_flops`).
* ``fedmllm`` — devices (debiasing prompt) train locally with a proximal term toward the
  last global LoRA on the intermediate layers, λ_j by missing-modality rate, and upload
  LoRA and connector; the server averages key by key (weights: samples); a device loads
  the global tensors.

No server model for FediLoRA and FedMLLM: their server records no metrics.
"""

from __future__ import annotations

from learning.mlecs import Mlecs, State
from learning.mlecs_baselines import (
    EDIT_THRESHOLD,
    FEDMLLM_LAMBDA,
    MlecsBaselines,
    dimension_wise_average,
    editing_flops,
    is_lora,
    layer_edit,
    rank_slice,
    regulariser_weight,
    shared_keys,
)
from simnet.protocols.context import Context
from simnet.protocols.mlecs import (
    REPORTED,
    Device,
    DeviceActor,
    MlecsServer,
    average_by_key,
    evaluated,
)
from simnet.wire.message import Message


async def evaluate(ctx: Context, learner: Mlecs, device: Device) -> None:
    """``device``'s model evaluated on its test data, recorded (as
    :func:`~simnet.protocols.mlecs.train_and_evaluate` does after training)."""
    node = ctx.node(device.node)
    result = await node.job(evaluated, learner, "slm", device.modalities, device.state, device.test)
    device.metrics, device.generated = result.metrics, result.generated
    ctx.record(device.node, device.metrics, REPORTED)


def _parts(merged: State, updates: list[Message]) -> list[State]:
    """Each update's keys of ``merged`` (LoRA cut to the update's rank)."""
    return [rank_slice(merged, m.payload) for m in updates]


class BaselineServer(MlecsServer):
    """The server of ``co_plms``, ``fedilora`` and ``fedmllm`` (see the module doc)."""

    learner: MlecsBaselines

    async def _open(self, r: int, online: list[str]) -> None:
        for device in online:
            self.ctx.send(self.node, device, "round_start", round=r)

    async def _aggregate(self, updates: list[Message], r: int) -> None:
        states = [m.payload for m in updates]
        samples = [m.meta["samples"] for m in updates]
        await self.api.compute(Mlecs.averaging_flops(states))
        if self.method == "fedilora":
            merged = await self.api.job(dimension_wise_average, states, samples)
        else:
            merged = await self.api.job(average_by_key, states, samples)
        if self.method == "co_plms":
            self.slm = {**self.slm, **merged}  # the server's proxy: every modality
            job = self.learner.co_plms_server_job(self.llm, self.slm, self.public,
                                                  self.seed * 1000 + r)  # fmt: skip
            self.llm, self.slm = await self.api.work(job)
            await self._evaluate()
            merged = self.slm
        parts = await self.api.job(_parts, merged, updates)
        for m, part in zip(updates, parts, strict=True):
            self.ctx.send(self.node, m.src, "server_lora", part, round=r)


class CoPlmsDevice(DeviceActor):
    """A Co-PLMs device: its SLM (``device.state``, local) and its proxy (:attr:`proxy`)."""

    learner: MlecsBaselines
    proxy: State | None = None
    """The proxy's state, drawn from the device's seed + 3 before its first round."""

    def _proxy(self) -> State:
        if self.proxy is None:
            self.proxy = self.learner.fresh("slm", self.device.modalities, self.seed + 3)
        return self.proxy

    async def _train(self, message: Message, seed: int) -> None:
        device, node = self.device, self.ctx.node(self.device.node)
        job = self.learner.co_plms_device_job(
            device.modalities, device.state, self._proxy(), device.private, seed
        )
        device.state, self.proxy = await node.work(job)
        await evaluate(self.ctx, self.learner, device)

    async def _shared(self) -> State:
        proxy = self._proxy()
        return {k: proxy[k] for k in shared_keys("co_plms", proxy)}

    async def _apply(self, payload: State) -> None:
        self.proxy = {**self._proxy(), **payload}


class FediLoraDevice(DeviceActor):
    """A FediLoRA device: local training; the global LoRA edits its own layer by layer."""

    async def _shared(self) -> State:
        state = self.device.state
        return {k: state[k] for k in shared_keys("fedilora", state)}

    async def _apply(self, payload: State) -> None:
        device, node = self.device, self.ctx.node(self.device.node)
        await node.compute(editing_flops(device.state))
        device.state, replaced = await node.job(layer_edit, device.state, payload, EDIT_THRESHOLD)
        node.metric("edited_layers", len(replaced))


class FedMllmDevice(DeviceActor):
    """A FedMLLM device: adopts the global tensors; a proximal term holds its intermediate
    LoRA layers near the global LoRA while it trains."""

    learner: MlecsBaselines
    anchor: State | None = None
    """The last global LoRA received (``None`` before the first)."""

    async def _train(self, message: Message, seed: int) -> None:
        device, node = self.device, self.ctx.node(self.device.node)
        lam = regulariser_weight(FEDMLLM_LAMBDA, len(device.modalities), len(self.learner.dims))
        job = self.learner.fedmllm_job(
            device.modalities, device.state, self.anchor or {}, lam, device.private, seed
        )
        device.state = await node.work(job)
        await evaluate(self.ctx, self.learner, device)

    async def _shared(self) -> State:
        state = self.device.state
        return {k: state[k] for k in shared_keys("fedmllm", state)}

    async def _apply(self, payload: State) -> None:
        self.device.state = {**self.device.state, **payload}
        self.anchor = {k: v for k, v in payload.items() if is_lora(k)}


DEVICES: dict[str, type[DeviceActor]] = {
    "co_plms": CoPlmsDevice,
    "fedilora": FediLoraDevice,
    "fedmllm": FedMllmDevice,
}
"""Each baseline's device actor."""


def actors(method: str) -> tuple[type[MlecsServer], type[DeviceActor]]:
    """The server and device actor classes of ``method`` (ML-ECS's own for any method
    not of this module)."""
    if method in DEVICES:
        return BaselineServer, DEVICES[method]
    return MlecsServer, DeviceActor
