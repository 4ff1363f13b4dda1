"""The ``federated`` workload: Mega-CE²'s three-tier training and its comparisons.

``cloud.mode``: ``async`` (Mega-CE²: synchronous end–edge, asynchronous edge–cloud),
``sync`` (HierFAVG: the cloud waits for every edge each round), ``flat`` (two-tier
FedAvg: the cloud averages the ends directly; edges only forward packets) or
``cloud_only`` (ends upload raw media; the cloud extracts features and trains alone). The
protocols are in :mod:`simnet.protocols.hierarchical` and :mod:`simnet.protocols.cloud`;
the data layout (who holds which samples) is documented in docs/megace2.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from learning.data import (
    dirichlet_partition,
    iid_partition,
    load_mosei,
    modality_availability,
    mosei_like,
)
from learning.data.dataset import MultimodalDataset
from learning.federated import Learner
from learning.models import MODELS, FusionModel, build_model
from learning.models.base import OptionError
from learning.train import TrainConfig
from simnet.actor import Actor
from simnet.config.origin import RUN_ORIGIN, Origin
from simnet.config.plugins import PluginRef, guarded, is_reference, load_class, resolve
from simnet.config.strict import Strict
from simnet.errors import InputError
from simnet.protocols.cloud import CentralServer, Cloud, FlatServer, raw_upload
from simnet.protocols.context import Context
from simnet.protocols.hierarchical import Aggregator, Edge, End, EndData, RoundRules
from simnet.protocols.inference import KINDS as INFERENCE_KINDS
from simnet.protocols.inference import PHASE as INFERENCE_PHASE
from simnet.protocols.inference import Server, breakdown, run_requests, serve
from simnet.strategies import Strategy
from simnet.strategies.configured import configured, with_settings
from simnet.topology.graph import Topology
from simnet.workloads.base import WorkloadRun, by_owner, summed
from simnet.workloads.handover import Handover


class DataConfig(Strict):
    """``synthetic`` MOSEI-shaped data (sizes, ``seq_len`` steps, ``difficulty``), a
    MOSI/MOSEI feature ``file`` at ``path`` (relative to the scenario file), or the user's
    ``module:function``, called ``function(seed=seed, **options)`` and returning a
    :class:`~learning.data.dataset.MultimodalDataset`."""

    source: str = "synthetic"
    options: dict[str, Any] = Field(default_factory=dict)
    path: str | None = None
    layout: Literal["auto", "mult", "mmsa"] = "auto"
    train: int = Field(default=900, ge=1)
    valid: int = Field(default=100, ge=1)
    test: int = Field(default=400, ge=1)
    seq_len: int = Field(default=12, ge=1)
    difficulty: float = Field(default=0.3, ge=0)

    @field_validator("source")
    @classmethod
    def _known_source(cls, source: str) -> str:
        if source not in ("synthetic", "file") and not is_reference(source):
            raise ValueError(f"synthetic, file or module:function (got {source!r})")
        return source


class PartitionConfig(Strict):
    """Train samples dealt to ends (``iid`` or ``dirichlet`` with ``alpha``); each end
    holds out ``test_share`` for its edge's evaluation and uploads ``upload_share`` of the
    rest to its edge as the adapter's training data; with ``modality_rate`` an end has
    only the modalities it drew (its edge pools them with masks)."""

    scheme: Literal["iid", "dirichlet"] = "dirichlet"
    alpha: float = Field(default=1.0, gt=0)
    test_share: float = Field(default=0.2, gt=0, lt=1)
    upload_share: float = Field(default=0.25, gt=0, le=1)
    modality_rate: float | dict[str, float] | None = None
    """ρ: each end holds modality m with probability ρ_m (at least one); ``None``: all."""


class ModelConfig(Strict):
    """A model of :data:`learning.models.MODELS` and its constructor ``options``."""

    name: str = "mult"
    options: dict[str, Any] = Field(default_factory=lambda: {"width": 16, "layers": 2, "heads": 2})


class TrainingConfig(Strict):
    """Adam, ``epochs`` passes over the local data in batches of ``batch_size``."""

    epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=24, ge=1)
    lr: float = Field(default=1e-3, gt=0)

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr)


class EndConfig(Strict):
    """End devices: local ``training`` (``strategy`` ``fedavg`` or ``fedprox`` with ``mu``);
    ``feature_flops_per_sample`` FLOPs to turn one sample's raw media
    (``raw_bytes_per_sample`` bytes) into features."""

    training: TrainingConfig = Field(default_factory=TrainingConfig)
    feature_flops_per_sample: float = Field(default=2e8, ge=0)
    raw_bytes_per_sample: int = Field(default=7_500_000, ge=0)
    strategy: Literal["fedavg", "fedprox"] = "fedavg"
    """``fedprox``: the local loss gets FedProx's proximal term (μ/2)·‖w − w⁰‖²."""
    mu: float = Field(default=0.01, ge=0)
    """FedProx's μ (``strategy: fedprox`` only)."""

    def train_config(self) -> TrainConfig:
        """The local training settings, with μ for FedProx (0 for plain FedAvg)."""
        mu = self.mu if self.strategy == "fedprox" else 0.0
        return replace(self.training.train_config(), prox_mu=mu)


class EdgeConfig(Strict):
    """Edges: round ``deadline_s`` after the broadcast (none: wait for every end), what
    happens to a late update (``drop`` or use in the ``next`` round), the personal
    ``adapter`` and its ``adapter_training``; the ``strategy`` of its rounds (with
    ``strategy_options``) and how many ends a round samples."""

    deadline_s: float | None = Field(default=None, gt=0)
    late_policy: Literal["drop", "next"] = "drop"
    adapter: bool = True
    adapter_training: TrainingConfig = Field(default_factory=TrainingConfig)
    strategy: str = "fedavg"
    """How an edge merges its ends' updates: a built-in (``fedavg``) or ``module:Class``."""
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    clients_per_round: int | None = Field(default=None, ge=1)
    """Ends each round takes (sampled by the strategy's ``select``; default all)."""
    fraction: float | None = Field(default=None, gt=0, le=1)
    """Share of the ends each round takes, ⌈fraction·n⌉ (instead of ``clients_per_round``)."""

    @model_validator(mode="after")
    def _one_sample_size(self) -> EdgeConfig:
        if self.clients_per_round is not None and self.fraction is not None:
            raise ValueError("give clients_per_round or fraction, not both")
        return self


class CloudConfig(Strict):
    """The cloud: ``mode``; its ``strategy`` (FedAsync's — or FedBuff's — ``alpha`` and
    ``staleness`` rule s(τ) with ``a``, ``b``; FedBuff's ``buffer``); the run ends after
    ``updates`` edge models merged (async, sync), ``updates`` rounds (flat) or
    ``updates`` epochs (cloud_only). ``deadline_s``: how long the cloud waits for edges
    (sync: a round closes ``deadline_s`` after its first update; cloud_only: the raw
    uploads; async and sync, once done: edges yet to be stopped)."""

    mode: Literal["async", "sync", "flat", "cloud_only"] = "async"
    deadline_s: float | None = Field(default=None, gt=0)
    alpha: float = Field(default=0.6, gt=0, le=1)
    staleness: Literal["constant", "polynomial", "hinge"] = "polynomial"
    a: float = Field(default=0.5, gt=0)
    b: int = Field(default=4, ge=0)
    updates: int = Field(default=36, ge=1)
    strategy: str | None = None
    """How the cloud merges edge models: ``fedasync`` (the default of ``async``),
    ``fedbuff``, ``fedavg`` (the default of ``sync``) or ``module:Class``."""
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    buffer: int | None = Field(default=None, ge=1)
    """Updates the asynchronous cloud collects before each aggregation (FedBuff's K,
    default 3 for ``fedbuff``, 1 otherwise)."""

    def strategy_name(self) -> str:
        """The strategy named, or the mode's default."""
        return self.strategy or ("fedavg" if self.mode == "sync" else "fedasync")

    def builtin_options(self) -> dict[str, dict[str, Any]]:
        """The built-in strategies' settings from this section."""
        rule = {"staleness": self.staleness, "a": self.a, "b": self.b, "alpha": self.alpha}
        return {
            "fedasync": rule,
            "fedbuff": {**rule, **({"buffer": self.buffer} if self.buffer else {})},
        }


class TargetConfig(Strict):
    """Time to target: first virtual time the cloud model's ``metric`` reaches ``value``
    (at most ``value`` for ``mae``, at least otherwise)."""

    metric: Literal["acc2_non0", "f1_non0", "mae", "corr"] = "acc2_non0"
    value: float = 0.7


class InferenceConfig(Strict):
    """After training: ``requests`` inference requests per placement (``edge``: features
    up, the edge's personalised model; ``cloud``: raw media up, the cloud model), Poisson
    at ``rate_per_s`` over the ends; placements run one after the other. A request whose
    answer has not come ``timeout_s`` after its upload arrived fails (none: it waits as
    long as it takes; required when the scenario has faults)."""

    requests: int = Field(default=100, ge=1)
    rate_per_s: float = Field(default=20.0, gt=0)
    timeout_s: float | None = Field(default=None, gt=0)
    placements: list[Literal["edge", "cloud"]] = Field(
        default_factory=lambda: ["edge", "cloud"], min_length=1
    )


class FederatedConfig(Strict):
    """``workload`` of kind ``federated``."""

    kind: Literal["federated"]
    data: DataConfig = Field(default_factory=DataConfig)
    partition: PartitionConfig = Field(default_factory=PartitionConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    end: EndConfig = Field(default_factory=EndConfig)
    edge: EdgeConfig = Field(default_factory=EdgeConfig)
    cloud: CloudConfig = Field(default_factory=CloudConfig)
    target: TargetConfig = Field(default_factory=TargetConfig)
    inference: InferenceConfig | None = None


PERSONALISATION = {"acc2": "acc2_non0", "f1": "f1_non0", "mae": "mae"}
"""``summary.json``'s ``personalisation`` keys → the evaluation metrics they hold."""


def gain_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The :data:`PERSONALISATION` entries of an evaluation (those it has)."""
    return {key: metrics[name] for key, name in PERSONALISATION.items() if name in metrics}


NO_EDGE_MODELS = ("flat", "cloud_only")
"""Modes whose edges hold no model."""


def roles(topology: Topology) -> tuple[str, dict[str, list[str]]]:
    """The cloud (the first cloud node) and each edge's ends (the first edge on an end's
    route to the cloud; the cloud itself for an end that reaches it through no edge), in
    topology order."""
    cloud = topology.nodes_in_tier("cloud")[0]
    children: dict[str, list[str]] = {e: [] for e in [*topology.nodes_in_tier("edge"), cloud]}
    for end in topology.nodes_in_tier("end"):
        route = topology.path(end, cloud)
        children[next((n for n in route if topology.nodes[n].tier == "edge"), cloud)].append(end)
    return cloud, {parent: ends for parent, ends in children.items() if ends}


def ends_in_order(children: dict[str, list[str]]) -> list[str]:
    """The ends of :func:`roles`' groups, group by group."""
    return [end for group in children.values() for end in group]


DEADLINES = {
    "edge": ("async", "sync", "flat"),
    "cloud": ("async", "sync", "cloud_only"),
}
"""Which modes need ``workload.edge.deadline_s`` / ``workload.cloud.deadline_s`` when the
scenario injects faults (someone would otherwise wait for ever)."""


def check(
    config: FederatedConfig, topology: Topology, origin: Origin, seed: int, faulty: bool
) -> None:
    """Roles exist, a data file is there and loads (the dataset kept for the run:
    :func:`run_data`), the model and its options build over its modalities, the partition
    deals every end enough samples, deadlines are set where faults need them."""
    source = origin.source
    if not topology.nodes_in_tier("cloud") or not topology.nodes_in_tier("end"):
        raise InputError(source, "topology", "the federated workload needs a cloud and end nodes")
    if config.cloud.mode in ("async", "sync"):
        cloud, children = roles(topology)
        if cloud in children:
            raise InputError(
                source, "workload.cloud.mode",
                f"{config.cloud.mode} needs an edge between every end and the cloud "
                f"({children[cloud][0]} has none); use flat or cloud_only",
            )  # fmt: skip
    inference = config.inference
    if inference and "edge" in inference.placements and config.cloud.mode in NO_EDGE_MODELS:
        raise InputError(
            source, "workload.inference.placements",
            f"edge placement needs edge models: cloud.mode async or sync, not {config.cloud.mode}",
        )  # fmt: skip
    model = config.model
    if is_reference(model.name):
        model.name = load_class(model.name, origin, "workload.model.name", FusionModel)[0].text
    elif model.name not in MODELS:
        known = ", ".join(MODELS)
        raise InputError(source, "workload.model.name", f"must be one of {known} or module:Class")
    data = config.data
    if is_reference(data.source):
        data.source = resolve(data.source, origin, "workload.data.source").text
    if data.source == "file":
        if data.path is None:
            raise InputError(source, "workload.data.path", "required when source is file")
        path = origin.base / data.path
        if not path.is_file():
            raise InputError(source, "workload.data.path", f"file not found: {path}")
        data.path = str(origin.resolve(data.path))
    rate = config.partition.modality_rate
    if rate is not None:
        try:
            modality_availability(1, ("text", "audio", "vision"), rate, 0)
        except ValueError as exc:
            raise InputError(source, "workload.partition.modality_rate", str(exc)) from None
    n_ends = len(topology.nodes_in_tier("end"))
    if data.source == "synthetic" and data.train < 2 * n_ends:
        raise InputError(source, "workload.data.train", f"too few samples for {n_ends} ends")
    if faulty and inference is not None and inference.timeout_s is None:
        raise InputError(
            source, "workload.inference.timeout_s", "required when the scenario has faults"
        )
    for tier, modes in DEADLINES.items():
        rules = getattr(config, tier)
        if faulty and config.cloud.mode in modes and rules.deadline_s is None:
            raise InputError(
                source, f"workload.{tier}.deadline_s",
                f"required when the scenario has faults (cloud.mode {config.cloud.mode})",
            )  # fmt: skip
    _check_strategies(config, origin)
    _checked.clear()  # hold one dataset at most
    try:
        dataset = load_data(data, seed)
    except (ValueError, OSError, KeyError) as exc:
        raise InputError(source, "workload.data", str(exc).splitlines()[0]) from None
    try:
        model_factory(model, dataset.feature_dims())()
    except OptionError as exc:
        raise InputError(source, f"workload.model.options.{exc.option}", exc.message) from None
    except (TypeError, ValueError) as exc:
        raise InputError(source, "workload.model.options", str(exc).splitlines()[0]) from None
    try:
        end_datasets(dataset, ends_in_order(roles(topology)[1]), config.partition, seed)
    except ValueError as exc:
        raise InputError(source, "workload.partition", str(exc).splitlines()[0]) from None
    _checked.keep(config, (seed, data.model_dump_json()), dataset)


_checked: Handover[MultimodalDataset] = Handover()
"""The dataset the latest :func:`check` loaded, until that config's run takes it."""


def run_data(config: FederatedConfig, seed: int) -> MultimodalDataset:
    """The dataset of a run of ``config``: the one its check loaded (taken, if the data
    settings are unchanged), else loaded now."""
    key = (seed, config.data.model_dump_json())
    return _checked.take(config, key, lambda: load_data(config.data, seed))


def edge_strategy(config: FederatedConfig, origin: Origin) -> Strategy:
    """A fresh strategy of an edge's rounds (of the flat server's), with its sampling."""
    edge = config.edge
    field = "workload.edge.strategy"
    strategy = configured(edge.strategy, edge.strategy_options, origin, field)
    return with_settings(strategy, edge.clients_per_round, edge.fraction)


def cloud_strategy(config: FederatedConfig, origin: Origin) -> Strategy:
    """The cloud's strategy (``async`` and ``sync``), with its ``buffer``."""
    cloud = config.cloud
    options = cloud.builtin_options()
    field = "workload.cloud.strategy"
    strategy = configured(cloud.strategy_name(), cloud.strategy_options, origin, field, options)
    return with_settings(strategy, buffer=cloud.buffer)


def _check_strategies(config: FederatedConfig, origin: Origin) -> None:
    """Plug-in references resolved (a file's to its absolute path, for the run) and every
    strategy built once."""
    for section, field in ((config.edge, "workload.edge.strategy"),
                           (config.cloud, "workload.cloud.strategy")):  # fmt: skip
        if section.strategy is not None and is_reference(section.strategy):
            section.strategy = resolve(section.strategy, origin, field).text
    edge_strategy(config, origin)
    if config.cloud.mode in ("async", "sync"):
        cloud_strategy(config, origin)


def plugin_model(
    ref: PluginRef, dims: dict[str, int], out_dim: int, options: dict[str, Any]
) -> FusionModel:
    """The user's model class at ``ref`` built as ``Class(dims, out_dim, **options)``."""
    return guarded("workload.model.name", ref.text, ref.load(), dims, out_dim, **options)


def model_factory(config: ModelConfig, dims: dict[str, int]) -> Callable[[], FusionModel]:
    """A picklable maker of fresh models of ``config`` over ``dims`` (one output)."""
    if is_reference(config.name):
        module, _, name = config.name.rpartition(":")
        return partial(plugin_model, PluginRef(module, name), dims, 1, config.options)
    return partial(build_model, config.name, dims, 1, **config.options)


def load_data(config: DataConfig, seed: int) -> MultimodalDataset:
    """The dataset ``config`` describes (a plug-in's must be a MultimodalDataset)."""
    if is_reference(config.source):
        module, _, name = config.source.rpartition(":")
        loader = PluginRef(module, name).load()
        field = "workload.data.source"
        dataset = guarded(field, config.source, loader, seed=seed, **config.options)
        if not isinstance(dataset, MultimodalDataset):
            kind = type(dataset).__name__
            raise ValueError(f"{config.source} returned a {kind}, not a MultimodalDataset")
        return dataset
    if config.source == "file":
        return load_mosei(config.path or "", config.layout)
    return mosei_like(
        config.train, config.valid, config.test, config.seq_len, difficulty=config.difficulty,
        seed=seed,
    )  # fmt: skip


def end_datasets(
    dataset: MultimodalDataset, ends: list[str], cfg: PartitionConfig, seed: int
) -> dict[str, EndData]:
    """Deal the train split to ``ends``, cut each share into train / upload / test, and
    keep only the modalities each end drew (``modality_rate``)."""
    labels = dataset.train.labels
    if cfg.scheme == "iid":
        parts = iid_partition(len(labels), len(ends), seed)
    else:
        parts = dirichlet_partition(labels, len(ends), cfg.alpha, seed, min_size=2)
    rng = np.random.default_rng(seed)
    held = [dataset.modalities] * len(ends)
    if cfg.modality_rate is not None:
        held = modality_availability(len(ends), dataset.modalities, cfg.modality_rate, seed)
    out = {}
    for end, part, has in zip(ends, parts, held, strict=True):
        part = rng.permutation(part)
        n_test = max(1, round(cfg.test_share * len(part)))
        train = part[n_test:]
        upload = train[: max(1, round(cfg.upload_share * len(train)))]
        splits = [
            dataset.train.subset(ix.tolist()).only(has) for ix in (train, upload, part[:n_test])
        ]
        out[end] = EndData(*splits)
    return out


class FederatedRun(WorkloadRun):
    """Builds the data, the learner and the roles; spawns their processes."""

    progress_unit = "step"

    def __init__(
        self, config: FederatedConfig, world: Any, advance: Any, runtime: Any = None
    ) -> None:
        super().__init__(config, world, advance, runtime)
        seed = world.seed
        dataset = run_data(config, seed)
        dims = dataset.feature_dims()
        learner = Learner(
            model_factory(config.model, dims),
            dataset.task,
            config.end.train_config(),
            config.edge.adapter_training.train_config(),
            seed,
            self.runtime.device,
        )
        self.ctx = Context(self.runtime, learner, seed)
        world.network.phases.update(dict.fromkeys(INFERENCE_KINDS, INFERENCE_PHASE))
        self.server: Cloud | FlatServer | CentralServer
        self.cloud_id, self.children = roles(world.topology)
        self.main_node = self.cloud_id
        ends = ends_in_order(self.children)
        self.data = end_datasets(dataset, ends, config.partition, seed)
        self.actors: list[tuple[str, Callable[[], Actor]]] = []
        """(node, entry) of every end and edge: started by start(), again on recovery."""
        self.aggregators: list[Aggregator] = []
        self.edges: list[Edge] = []
        self.inference: dict[str, list[dict[str, float] | None]] = {}
        """Every request's latency terms (``None``: failed), by placement."""
        cloud, edge_cfg = config.cloud, config.edge
        rules = RoundRules(edge_cfg.deadline_s, edge_cfg.late_policy)
        features = config.end.feature_flops_per_sample
        if cloud.mode == "cloud_only":
            raw = config.end.raw_bytes_per_sample
            for end in ends:
                n = len(self.data[end].train)
                upload = partial(raw_upload, self.ctx, end, self.cloud_id, n, raw)
                self.actors.append((end, upload))
            train = {end: self.data[end].train for end in ends}
            self.server = CentralServer(
                self.ctx, self.cloud_id, train, features, cloud.updates, dataset.test, advance,
                cloud.deadline_s,
            )  # fmt: skip
            return
        parents = dict.fromkeys(ends, self.cloud_id)
        if cloud.mode == "flat":
            strategy = edge_strategy(config, RUN_ORIGIN)
            self.aggregators = [Aggregator(self.ctx, self.cloud_id, ends, rules, strategy)]
            self.server = FlatServer(
                self.ctx, self.aggregators[0], cloud.updates, dataset.test, advance
            )
        else:
            for k, (edge, group) in enumerate(self.children.items()):
                adapter = learner.new_adapter(seed + k) if edge_cfg.adapter else None
                strategy = edge_strategy(config, RUN_ORIGIN)
                self.edges.append(
                    Edge(self.ctx, edge, self.cloud_id, group, rules, adapter, strategy)
                )
                parents.update(dict.fromkeys(group, edge))
            self.aggregators = [e.rounds for e in self.edges]
            rule = cloud_strategy(config, RUN_ORIGIN)
            self.server = Cloud(
                self.ctx, self.cloud_id, list(self.children), cloud.mode, rule, cloud.updates,
                dataset.test, advance, cloud.deadline_s,
            )  # fmt: skip
            self.actors += [(e.edge, e.process) for e in self.edges]
        for end, parent in parents.items():
            role = End(self.ctx, end, parent, self.data[end], features)
            self.actors.append((end, role.process))

    @property
    def progress_total(self) -> float:
        """Updates (merges, rounds or epochs), then inference requests."""
        inference = self.config.inference
        requests = inference.requests * len(inference.placements) if inference else 0
        return self.config.cloud.updates + requests

    def start(self) -> None:
        for node, entry in self.actors:
            self.runtime.start(node, entry)
        training = self.runtime.start(self.cloud_id, self.server.process)
        self.runtime.spawn(self._after(training))

    async def _after(self, training: Awaitable[None]) -> None:
        """Once the cloud's training is over: the inference requests, then done."""
        await training
        if self.config.inference is not None:
            await self._inference()
        self.finish()

    def _servers(self) -> Callable[[str, str], Server]:
        """Which model serves an end's requests of a placement: the cloud's, or its edge's
        personalised one (an edge that never got a model serves the cloud's: it was
        stopped before its first pull was answered)."""
        parent = {end: edge for edge in self.edges for end in edge.rounds.ends}

        def server(placement: str, end: str) -> Server:
            if placement == "cloud":
                return Server(self.cloud_id, self.server.state, None)
            edge = parent[end]
            state = self.server.state if edge.state is None else edge.state
            return Server(edge.edge, state, edge.adapter)

        return server

    async def _inference(self) -> None:
        """Each placement's requests in turn (from the ends this runtime hosts)."""
        cfg, end_cfg = self.config.inference, self.config.end
        samples = {end: data.test for end, data in self.data.items()}
        features, raw = end_cfg.feature_flops_per_sample, end_cfg.raw_bytes_per_sample
        servers = self._servers()
        parent = {end: edge.edge for edge in self.edges for end in edge.rounds.ends}
        for placement in cfg.placements:
            hosts = [self.cloud_id] if placement == "cloud" else [e.edge for e in self.edges]
            for host in hosts:
                self.runtime.start(host, partial(serve, self.ctx, host, servers, samples, features))
            gaps = self.world.rng.exponential(1.0 / cfg.rate_per_s, size=cfg.requests)
            target = (lambda end: self.cloud_id) if placement == "cloud" else parent.__getitem__
            results = await run_requests(
                self.ctx, placement, target, samples, gaps, features, raw, cfg.timeout_s,
                self.advance, self.runtime.hosts,
            )  # fmt: skip
            self.inference[placement] = results

    def time_to_target(self) -> float | None:
        target = self.config.target
        for t, metrics in self.server.history:
            value = metrics.get(target.metric)
            if value is None:
                continue
            if (value <= target.value) if target.metric == "mae" else (value >= target.value):
                return t
        return None

    @staticmethod
    def combine(parts: list[dict[str, Any]], main: int, owner: dict[str, int]) -> dict[str, Any]:
        """A live run's summary: the cloud's process's, with each edge's entries from its
        own process, and parameter and late-update counts and inference requests over
        every process."""
        out = by_owner(parts, main, owner, ("edges", "edge_samples", "personalisation"))
        out["parameters_by_kind"] = summed(p["parameters_by_kind"] for p in parts)
        out["late_updates"] = summed(p["late_updates"] for p in parts)
        requests: dict[str, list[dict[str, float] | None]] = {}
        for part in parts:
            for placement, results in part.get("inference_requests", {}).items():
                requests.setdefault(placement, []).extend(results)
        out.pop("inference_requests", None)
        if requests:
            out["inference"] = {p: breakdown(r) for p, r in requests.items()}
        return out

    def live_part(self) -> dict[str, Any]:
        """The summary, with the terms of every request this process's ends made (each
        process makes its own ends' requests)."""
        return {**self.summary(), "inference_requests": self.inference}

    def summary(self) -> dict[str, Any]:
        final = self.server.history[-1][1] if self.server.history else {}
        out: dict[str, Any] = {
            "cloud_mode": self.config.cloud.mode,
            "model_parameters": self.ctx.learner.trainable,
            "cloud": {"version": self.server.version, **final},
            "edges": {edge.edge: edge.metrics for edge in self.edges},
            "personalisation": {
                edge.edge: {
                    "global": gain_metrics(edge.global_metrics),
                    "personalised": gain_metrics(edge.metrics),
                }
                for edge in self.edges
                if edge.adapter is not None
            },  # fmt: skip
            "edge_samples": {edge.edge: edge.samples for edge in self.edges},
            "target": self.config.target.model_dump(),
            "time_to_target_s": self.time_to_target(),
            "parameters_by_kind": dict(sorted(self.ctx.parameters.items())),
        }
        if isinstance(self.server, Cloud):
            tau = self.server.staleness or [0]
            out["updates_merged"] = self.server.merged
            out["late_edge_updates"] = self.server.late
            out["staleness"] = {"mean": float(np.mean(tau)), "max": int(max(tau))}
        if self.inference:
            out["inference"] = {p: breakdown(r) for p, r in self.inference.items()}
        out["late_updates"] = {
            "missed_deadline": sum(a.late for a in self.aggregators),
            "used_next_round": sum(a.used_late for a in self.aggregators),
            "dropped": sum(a.dropped for a in self.aggregators),
        }
        return out
