"""The ``mlecs`` workload: ML-ECS edge–cloud co-training of small multimodal LMs.

Devices are the topology's end nodes, the server its first cloud node. The protocol is in
:mod:`simnet.protocols.mlecs`, the learning in :mod:`learning.mlecs`; docs/mlecs.md maps
the paper's equations to both. Those two (and transformers, peft behind them) are imported
only when a run is built, so loading or validating any scenario stays fast.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from learning.data import (
    fall_like,
    iid_partition,
    modality_availability,
    mosei_like,
    public_private_split,
)
from learning.data.dataset import MultimodalSplit
from learning.data.vast import VAST_MODALITIES, VastFileError, load_vast, vast_like
from simnet.config.origin import RUN_ORIGIN, Origin
from simnet.config.plugins import is_reference, resolve
from simnet.config.strict import Strict
from simnet.errors import InputError
from simnet.protocols.context import Context
from simnet.report.records import csv_text
from simnet.strategies import Strategy
from simnet.strategies.configured import configured
from simnet.topology.graph import Topology
from simnet.workloads.base import WorkloadRun, by_owner, summed
from simnet.workloads.handover import Handover

if TYPE_CHECKING:
    from learning.mlecs import MlecsSettings
    from simnet.protocols.mlecs import Device

PROMPTS = {
    "fall": "The sensors show the person",
    "mosei": "The speaker's sentiment is",
    "vast": "Summary of the clip:",
}
"""The instruction prompt of each task."""
CLASSES = {"fall": ("walking", "falling", "lying"), "mosei": ("negative", "neutral", "positive")}
"""The answer texts (class order) of each classification task; ``vast`` generates
summaries."""
MODALITIES = {
    "fall": ("acce", "rgb", "depth"),
    "mosei": ("text", "audio", "vision"),
    "vast": VAST_MODALITIES,
}
"""The modalities of each task's data."""
GENERATION_DEFAULTS = {"vocab_size": 1024, "warmup_steps": 400}
"""Model settings of a generation task where the scenario gives none (a summary needs
whole words as tokens and a warm-up that has read many of them)."""

NEUTRAL_BAND = 0.5
"""MOSEI-shaped sentiment y becomes a class: negative if y < −0.5, positive if y > 0.5,
neutral otherwise."""
SCORE_SPREADS = {
    "device_f1_macro": "f1_macro",
    "device_accuracy": "accuracy",
    "device_rouge_lsum": "rouge_lsum",
    "device_bertscore": "bertscore",
}
"""Summary keys given as {mean, best, worst} over the devices, from each device's score."""
UPLOAD_SPREADS = {
    "device_model_parameters": "model_parameters",
    "uploaded_parameters_per_device_round": "uploaded_parameters_per_round",
    "transmitted_share": "transmitted_share",
}
"""Summary keys given as {mean, min, max} over the devices, from each device's entry."""


class DataConfig(Strict):
    """``samples`` synthetic samples of ``task`` (split ¼ public / ¾ private, each 90/10
    train/test), ``seq_len`` steps and ``difficulty``; for ``vast``, ``path`` may name a
    real local VAST subset instead (relative to the scenario file; every clip of it is
    used, ``samples`` and the synthetic settings are ignored)."""

    task: Literal["fall", "mosei", "vast"] = "fall"
    samples: int = Field(default=600, ge=20)
    seq_len: int | None = Field(default=None, ge=1)
    difficulty: float = Field(default=0.3, ge=0)
    path: str | None = None


class BackboneConfig(Strict):
    """A causal LM built offline: ``family`` and size, or a local Hugging Face checkpoint
    directory ``path`` (relative to the scenario file; no download)."""

    family: Literal["gpt2", "llama", "qwen2"]
    hidden: int = Field(ge=1)
    layers: int = Field(ge=1)
    heads: int = Field(ge=1)
    path: str | None = None


class ModelConfig(Strict):
    """Unified models: LoRA, shared space, soft prompt, training per stage."""

    slm: BackboneConfig = BackboneConfig(family="gpt2", hidden=64, layers=2, heads=2)
    llm: BackboneConfig = BackboneConfig(family="llama", hidden=96, layers=2, heads=4)
    lora_r: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=16, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    lora_targets: dict[Literal["slm", "llm"], list[str]] = Field(default_factory=dict)
    """LoRA target modules per backbone; a backbone not named gets its family's default."""
    shared_dim: int = Field(default=64, ge=2)
    soft_tokens: int = Field(default=4, ge=1)
    batch_size: int = Field(default=8, ge=2)
    steps: int = Field(default=10, ge=1)
    lr: float = Field(default=3e-3, gt=0)
    temperature: float = Field(default=0.1, gt=0)
    warmup_steps: int | None = Field(default=None, ge=0)
    """Warm-up steps of each backbone (``None``: 60; 400 for ``vast``)."""
    vocab_size: int | None = Field(default=None, ge=259)
    """Tokenizer size (``None``: 300; 1024 for ``vast``)."""
    max_new_tokens: int | None = Field(default=None, ge=1)
    """Longest generated answer in tokens (``None``: 4, or for ``vast`` the longest
    public training reference plus 8)."""


class MlecsConfig(Strict):
    """``workload`` of kind ``mlecs``: ``method``, ``rounds``, the round ``deadline_s``,
    modality existing rate ``rho`` (one for all modalities or one per modality)."""

    kind: Literal["mlecs"]
    method: Literal[
        "ml_ecs", "no_mma", "no_se_ccl", "multi_fedavg", "standalone",
        "co_plms", "fedilora", "fedmllm",
    ] = "ml_ecs"  # fmt: skip
    rounds: int = Field(default=5, ge=1)
    deadline_s: float | None = Field(default=None, gt=0)
    """A round closes ``deadline_s`` after the server's broadcast (``None``: when every
    device's update is in); required when the scenario has faults."""
    rho: float | dict[str, float] = 0.5
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    strategy: str = "mma"
    """How the server merges the devices' LoRA updates (weights: modality counts, 1 with
    ``no_mma``): ``mma`` (eq. 13) or ``module:Class``."""
    strategy_options: dict[str, Any] = Field(default_factory=dict)

    def server_strategy(self, origin: Origin) -> Strategy:
        """A fresh strategy of the server's rounds."""
        return configured(self.strategy, self.strategy_options, origin, "workload.strategy")


def check(config: MlecsConfig, topology: Topology, origin: Origin, seed: int, faulty: bool) -> None:
    """A server, at least two devices, valid rates, data enough for every device, a
    deadline where faults need one."""
    source = origin.source
    if not topology.nodes_in_tier("cloud"):
        raise InputError(source, "topology", "mlecs needs a cloud node (the server)")
    if len(topology.nodes_in_tier("end")) < 2:
        raise InputError(source, "topology", "mlecs needs at least two end nodes (the devices)")
    for name in ("slm", "llm"):
        backbone = getattr(config.model, name)
        if backbone.path is not None:
            path = origin.base / backbone.path
            if not path.is_dir():
                field = f"workload.model.{name}.path"
                raise InputError(source, field, f"checkpoint directory not found: {path}")
            backbone.path = str(origin.resolve(backbone.path))
    data = config.data
    if data.path is not None:
        if data.task != "vast":
            raise InputError(source, "workload.data.path", "only task vast reads a local dataset")
        data.path = str(origin.resolve(data.path))
    modalities = MODALITIES[data.task]
    rates = config.rho if isinstance(config.rho, dict) else dict.fromkeys(modalities, config.rho)
    if set(rates) != set(modalities):
        raise InputError(
            source, "workload.rho", f"give one rate or one per modality {list(modalities)}"
        )
    if not all(0 <= r <= 1 for r in rates.values()) or not any(rates.values()):
        raise InputError(source, "workload.rho", "rates must be in [0, 1] and not all 0")
    if is_reference(config.strategy):
        config.strategy = resolve(config.strategy, origin, "workload.strategy").text
    config.server_strategy(origin)
    if faulty and config.method != "standalone" and config.deadline_s is None:
        raise InputError(source, "workload.deadline_s", "required when the scenario has faults")
    _planned.clear()
    try:
        _planned.keep(config, _plan_key(config, topology, seed), plan(config, topology, seed))
    except VastFileError as exc:
        raise InputError(source, "workload.data.path", str(exc).splitlines()[0]) from None
    except ValueError as exc:
        n = len(topology.nodes_in_tier("end"))
        message = f"too few for {n} devices ({str(exc).splitlines()[0]})"
        field = "workload.data.samples" if data.path is None else "workload.data.path"
        raise InputError(source, field, message) from None


@dataclass(frozen=True)
class Plan:
    """Who holds what: the sample pool (its labels index ``answers``), its public/private
    split, each device's modalities and its shares of the private train and test sets
    (indices)."""

    pool: MultimodalSplit
    answers: tuple[str, ...]
    parts: dict[str, np.ndarray]
    modalities: list[tuple[str, ...]]
    train: list[np.ndarray]
    test: list[np.ndarray]


def plan(config: MlecsConfig, topology: Topology, seed: int) -> Plan:
    """The data of a run and how it is dealt (ValueError when it cannot be)."""
    pool, answers = _pool(config.data, seed)
    parts = public_private_split(len(pool), seed)
    n = len(topology.nodes_in_tier("end"))
    has = modality_availability(n, pool.modalities, config.rho, seed)
    train = iid_partition(len(parts["private_train"]), n, seed)
    test = iid_partition(len(parts["private_test"]), n, seed + 1)
    return Plan(pool, answers, parts, has, train, test)


_planned: Handover[Plan] = Handover()
"""The plan the latest :func:`check` made, until that config's run takes it."""


def _plan_key(config: MlecsConfig, topology: Topology, seed: int) -> tuple:
    """What a plan depends on besides the config object: its data settings, the rates,
    the number of devices and the seed."""
    n = len(topology.nodes_in_tier("end"))
    return (config.data.model_dump_json(), repr(config.rho), n, seed)


def run_plan(config: MlecsConfig, topology: Topology, seed: int) -> Plan:
    """The plan of a run of ``config``: the one its check made (if nothing it depends on
    changed), else made now."""
    key = _plan_key(config, topology, seed)
    return _planned.take(config, key, lambda: plan(config, topology, seed))


def _pool(cfg: DataConfig, seed: int) -> tuple[MultimodalSplit, tuple[str, ...]]:
    """The task's samples and the texts their labels index (ValueError on bad data)."""
    if cfg.task == "vast":
        data = (
            load_vast(cfg.path) if cfg.path is not None
            else vast_like(cfg.samples, cfg.seq_len or 8, difficulty=cfg.difficulty, seed=seed)
        )  # fmt: skip
        return data.split, data.texts
    if cfg.task == "fall":
        kwargs = {} if cfg.seq_len is None else {"seq_len": cfg.seq_len}
        pool = fall_like(cfg.samples, 1, 1, difficulty=cfg.difficulty, seed=seed, **kwargs).train
        return pool, CLASSES["fall"]
    data = mosei_like(cfg.samples, 1, 1, cfg.seq_len or 12, difficulty=cfg.difficulty, seed=seed)
    labels = data.train.labels
    classes = (labels > -NEUTRAL_BAND).long() + (labels > NEUTRAL_BAND).long()
    return MultimodalSplit(data.train.features, classes), CLASSES["mosei"]


def settings(config: MlecsConfig, data: Plan) -> MlecsSettings:
    """The learner's settings for ``config`` on the data of ``data``."""
    from learning.llm import BackboneSpec
    from learning.mlecs import MlecsSettings

    task = config.data.task
    m = config.model
    generate = task == "vast"
    defaults = GENERATION_DEFAULTS if generate else {"vocab_size": 300, "warmup_steps": 60}
    warmup = (
        tuple(data.answers[int(y)] for y in data.pool.labels[data.parts["public_train"]])
        if generate else ()
    )  # fmt: skip
    spec = {
        name: BackboneSpec(
            family=b.family, hidden=b.hidden, layers=b.layers, heads=b.heads, path=b.path
        )
        for name, b in (("slm", m.slm), ("llm", m.llm))
    }
    return MlecsSettings(
        answers=data.answers, prompt=PROMPTS[task], task="generate" if generate else "classify",
        max_new_tokens=m.max_new_tokens, warmup_texts=warmup,
        vocab_size=m.vocab_size or defaults["vocab_size"],
        slm=spec["slm"], llm=spec["llm"], lora_r=m.lora_r,
        lora_alpha=m.lora_alpha, lora_dropout=m.lora_dropout, lora_targets=m.lora_targets,
        shared_dim=m.shared_dim,
        soft_tokens=m.soft_tokens, batch_size=m.batch_size, steps=m.steps, lr=m.lr,
        temperature=m.temperature,
        warmup_steps=defaults["warmup_steps"] if m.warmup_steps is None else m.warmup_steps,
    )  # fmt: skip


class MlecsRun(WorkloadRun):
    """Builds data, devices and the server; spawns their processes."""

    progress_unit = "round"

    def __init__(self, config: MlecsConfig, world: Any, advance: Any, runtime: Any = None) -> None:
        from learning.mlecs import Mlecs
        from learning.mlecs_baselines import METHODS, MlecsBaselines, baseline_settings
        from simnet.protocols.mlecs import Device
        from simnet.protocols.mlecs_baselines import actors

        super().__init__(config, world, advance, runtime)
        seed = world.seed
        data = run_plan(config, world.topology, seed)
        pool, parts = data.pool, data.parts
        self.server_id = world.topology.nodes_in_tier("cloud")[0]
        self.main_node = self.server_id
        ids = world.topology.nodes_in_tier("end")
        dims = {m: int(x.shape[-1]) for m, x in pool.features.items()}
        learner = MlecsBaselines if config.method in METHODS else Mlecs
        self.learner = learner(dims, baseline_settings(config.method, settings(config, data)), seed)
        self.ctx = Context(self.runtime, self.learner, seed)
        public = pool.subset(parts["public_train"])
        self.devices = [
            Device(
                node,
                tuple(mods),
                self.learner.fresh("slm", mods, seed + 10 + k),
                public.only(mods),
                pool.subset(parts["private_train"][data.train[k]]).only(mods),
                pool.subset(parts["private_test"][data.test[k]]).only(mods),
                {},
            )  # fmt: skip
            for k, (node, mods) in enumerate(zip(ids, data.modalities, strict=True))
        ]
        self.server = actors(config.method)[0](
            self.ctx, self.learner, self.server_id, self.devices, config.method, config.rounds,
            public, pool.subset(parts["public_test"]), seed, advance, config.deadline_s,
            config.server_strategy(RUN_ORIGIN),
        )  # fmt: skip

    @property
    def progress_total(self) -> float:
        return self.config.rounds * (len(self.devices) if self.config.method == "standalone" else 1)

    def start(self) -> None:
        from simnet.protocols.mlecs_baselines import actors

        cfg, seed = self.config, self.world.seed
        for k, d in enumerate(self.devices):
            if cfg.method == "standalone":
                entry = partial(self._standalone, d, seed + 100 * k)
            else:
                entry = actors(cfg.method)[1](
                    self.ctx, self.learner, d, self.server_id, cfg.method, seed + 100 * k,
                    cfg.deadline_s,
                ).process  # fmt: skip
            self.runtime.start(d.node, entry)
        if cfg.method != "standalone":
            self.runtime.spawn(self._after(self.runtime.start(self.server_id, self.server.process)))
        elif not any(self.runtime.hosts(d.node) for d in self.devices):
            self.finish()  # a live process without devices has nothing to do

    async def _after(self, server: Awaitable[None]) -> None:
        await server
        self.finish()

    async def _standalone(self, device: Any, seed: int) -> None:
        """A standalone device's rounds; the workload is done once every device's are (in a
        live run: every device of this process)."""
        from simnet.protocols.mlecs import standalone

        await standalone(self.ctx, self.learner, device, self.config.rounds, seed, self.advance)
        rounds, hosts = self.config.rounds, self.runtime.hosts
        if all(d.rounds_done == rounds for d in self.devices if hosts(d.node)):
            self.finish()

    def summary(self) -> dict[str, Any]:
        uploads = {d.node: self._uploads(d) for d in self.devices}
        devices = {
            d.node: {"modalities": list(d.private.modalities), **d.metrics, **uploads[d.node]}
            for d in self.devices
        }
        return {
            "method": self.config.method,
            "model_parameters": sum(v.numel() for v in self.server.slm.values()),
            "devices": devices,
            **device_spreads(devices),
            "server": self._scores(self.server.metrics),
            "server_late_updates": self.server.late,
            "parameters_by_kind": dict(sorted(self.ctx.parameters.items())),
        }

    def _scores(self, metrics: dict[str, float]) -> dict[str, float | None]:
        """``metrics``, with a generation task's BERTScore ``None`` where the encoder
        could not be loaded (and the model was evaluated)."""
        if self.config.data.task != "vast" or not metrics:
            return dict(metrics)
        return {"bertscore": None, **metrics}

    def tables(self) -> dict[str, str]:
        """A generation task's ``generations.csv``: ``node, sample, reference, generated``
        for the last evaluation of every device's model and of the server's (``sample``:
        the clip's index in the task's data)."""
        if self.config.data.task != "vast":
            return {}
        answers = self.learner.settings.answers
        models = [(d.node, d.test, d.generated) for d in self.devices]
        models.append((self.server_id, self.server.public_test, self.server.generated))
        rows = [
            [node, int(y), answers[int(y)], text]
            for node, data, texts in models
            for y, text in zip(data.labels, texts, strict=False)
        ]
        return {"generations.csv": csv_text(["node", "sample", "reference", "generated"], rows)}

    @staticmethod
    def combine(parts: list[dict[str, Any]], main: int, owner: dict[str, int]) -> dict[str, Any]:
        """A live run's summary: the server's process's, with each device's entry from its
        own process and the spreads and parameter counts over all of them."""
        out = by_owner(parts, main, owner, ("devices",))
        out.update(device_spreads(out["devices"]))
        out["parameters_by_kind"] = summed(p["parameters_by_kind"] for p in parts)
        return out

    def _uploads(self, device: Device) -> dict[str, float]:
        """What ``device`` uploaded, from the ``lora_update`` messages it sent: tensor
        elements per round it sent one (0 if it never did), and their share of its own
        model's parameters (its encoders make models of different modalities differ)."""
        rounds, elements = self.ctx.sent.get((device.node, "lora_update"), (0, 0))
        per_round = elements / rounds if rounds else 0.0
        total = self.learner.parameters("slm", device.modalities)
        return {
            "model_parameters": total,
            "uploaded_rounds": rounds,
            "uploaded_parameters_per_round": per_round,
            "transmitted_share": per_round / total,
        }


def device_spreads(devices: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Over the devices' summary entries: :data:`SCORE_SPREADS` (mean, best, worst, over
    those that have the score; ``None`` if none has) and :data:`UPLOAD_SPREADS`."""
    out: dict[str, Any] = {}
    for key, metric in SCORE_SPREADS.items():
        values = np.array([d[metric] for d in devices.values() if metric in d])
        out[key] = None if not values.size else {
            "mean": float(values.mean()), "best": float(values.max()),
            "worst": float(values.min()),
        }  # fmt: skip
    for key, per_device in UPLOAD_SPREADS.items():
        values = np.array([d[per_device] for d in devices.values()], dtype=float)
        out[key] = {"mean": float(values.mean()), "min": float(values.min()),
                    "max": float(values.max())}  # fmt: skip
    return out
