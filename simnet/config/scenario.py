"""Scenario files: loading, ``--set`` overrides, validation and the world they describe."""

from __future__ import annotations

import copy
import importlib.util
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from simnet.config import link_overrides as link_classes
from simnet.config.origin import Origin
from simnet.config.validation import parse
from simnet.config.yaml_file import read_yaml
from simnet.engine.availability import Availability, read_availability
from simnet.engine.faults import Dropout, FaultsConfig, NodeEvent, node_events
from simnet.engine.sharing import DEFAULTS, Sharing
from simnet.engine.world import LinkEvent, World
from simnet.errors import InputError
from simnet.executors import (
    BatchingExecutor,
    Executor,
    InlineExecutor,
    PoolExecutor,
    RayExecutor,
    default_workers,
)
from simnet.topology.graph import Topology
from simnet.topology.load import load_topology
from simnet.wire.codecs import get_codec
from simnet.workloads import WORKLOADS


class LinkEventConfig(BaseModel):
    """``{at, a, b, state}``: at ``at`` seconds the link a–b goes ``down`` or ``up``."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    at: float = Field(ge=0)
    a: str
    b: str
    state: Literal["up", "down"]


class NetworkConfig(BaseModel):
    """The sharing ``model`` (``maxmin``, ``cm02``, ``lv08``) and its parameters under
    SimGrid's names (left out: the model's defaults, :data:`simnet.engine.sharing.DEFAULTS`),
    scheduled link state changes, and the codec applied to every message payload
    (``none``, ``fp16``, ``int8``, ``topk:<fraction>``)."""

    model_config = ConfigDict(extra="forbid")

    model: Literal["maxmin", "cm02", "lv08"] = "maxmin"
    bandwidth_factor: float | None = Field(default=None, gt=0)
    latency_factor: float | None = Field(default=None, ge=0)
    weight_s: float | None = Field(default=None, ge=0)
    tcp_gamma: float | None = Field(default=None, gt=0)
    crosstraffic: bool | None = None
    codec: str = "none"
    events: list[LinkEventConfig] = Field(default_factory=list)

    @field_validator("codec")
    @classmethod
    def _known_codec(cls, spec: str) -> str:
        return get_codec(spec).name

    @field_validator("weight_s", "tcp_gamma", "crosstraffic")
    @classmethod
    def _of_the_model(cls, value: Any, info: ValidationInfo) -> Any:
        model = info.data.get("model", "maxmin")
        if value is not None and DEFAULTS[model][str(info.field_name)] is None:
            raise ValueError(f"a parameter of cm02 and lv08, not {model}")
        return value

    @model_validator(mode="after")
    def _model_defaults(self) -> NetworkConfig:
        for key, default in DEFAULTS[self.model].items():
            if getattr(self, key) is None:
                setattr(self, key, default)
        return self

    def sharing(self) -> Sharing:
        """The sharing rule these parameters describe."""
        if self.model == "maxmin":
            return Sharing()
        return Sharing(self.model, self.weight_s, self.tcp_gamma, self.crosstraffic)


class ExecutionConfig(BaseModel):
    """How a run is carried out: ``threads`` torch intra-op threads per learning job
    (results depend on it through floating-point sums, so it belongs to the scenario, not
    to the host), the ``backend`` that runs learning jobs (:mod:`simnet.executors`:
    ``inline`` in this process, ``pool`` in ``workers`` processes, ``ray`` in ``workers``
    Ray actors, default as many as the cores hold at ``threads`` each,
    :func:`~simnet.executors.default_workers`; results do not depend on it) and the
    virtual ``time_limit_s``."""

    model_config = ConfigDict(extra="forbid")

    threads: int = Field(default=1, ge=1)
    backend: Literal["inline", "pool", "ray"] = "inline"
    workers: int | None = Field(default=None, ge=1)
    address: str | None = None
    """Ray only: the address of a running Ray cluster (default: start a local Ray)."""
    batch_clients: bool = False
    """Clients' local updates that overlap in virtual time train as one vectorised job
    (:class:`~simnet.executors.BatchingExecutor`): faster with many clients; results
    change (other float rounding and dropout draws), but not with the backend."""
    device: Literal["cpu", "cuda"] = "cpu"
    """Where learning jobs train, evaluate and infer (federated workloads; ML-ECS runs on
    the CPU). ``cuda`` gives other float rounding than ``cpu``: results are bit-identical
    across backends on the CPU only. Messages carry CPU tensors either way."""

    @field_validator("backend")
    @classmethod
    def _ray_installed(cls, backend: str) -> str:
        if backend == "ray" and importlib.util.find_spec("ray") is None:
            raise ValueError('ray is not installed: pip install -e ".[ray]"')
        return backend

    @field_validator("device")
    @classmethod
    def _cuda_available(cls, device: str, info: ValidationInfo) -> str:
        if device == "cuda" and info.data.get("backend") == "ray":
            raise ValueError("cuda with backend ray is not supported yet (use inline or pool)")
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"no CUDA device here (torch {torch.__version__}); use cpu")
        return device

    @field_validator("workers")
    @classmethod
    def _workers_need_a_pool(cls, workers: int | None, info: ValidationInfo) -> int | None:
        if workers is not None and info.data.get("backend") == "inline":
            raise ValueError("only with backend pool or ray (inline runs jobs in this process)")
        return workers

    @field_validator("address")
    @classmethod
    def _address_needs_ray(cls, address: str | None, info: ValidationInfo) -> str | None:
        if address is not None and info.data.get("backend") != "ray":
            raise ValueError("only with backend ray")
        return address

    time_limit_s: float = Field(default=1e6, gt=0)
    """Virtual seconds after which a run that has not finished stops, marked incomplete
    (a protocol that can never finish, e.g. every device dropping out, still ends); a
    traffic workload's own ``until`` replaces it."""


class LiveConfig(BaseModel):
    """Bounds on what a live run's receivers hold (``simnet live``; the simulation ignores
    them): ``max_message_bytes`` a message may declare (default: twice the workload's
    largest message where it knows it, at most :data:`MAX_LIVE_MESSAGE_BYTES`), and
    ``reassembly_idle_s`` seconds after which a partial message that received nothing is
    evicted."""

    model_config = ConfigDict(extra="forbid")

    max_message_bytes: int | None = Field(default=None, ge=1)
    reassembly_idle_s: float = Field(default=30.0, gt=0)


MAX_LIVE_MESSAGE_BYTES = 256 << 20
"""The default and largest default ``live.max_message_bytes``, bytes (256 MiB)."""


class ScenarioConfig(BaseModel):
    """Top level of a scenario file; ``workload`` is validated by its own ``kind``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", description="defaults to the file name")
    seed: int = Field(default=0, ge=0)
    topology: str | dict[str, Any]
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    faults: FaultsConfig = Field(default_factory=FaultsConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    live: LiveConfig = Field(default_factory=LiveConfig)
    workload: dict[str, Any]


@dataclass
class Scenario:
    """A validated scenario, ready to run."""

    source: str
    config: ScenarioConfig
    topology: Topology
    workload: BaseModel
    node_events: list[NodeEvent]
    """The node events of ``faults`` (listed and traced), in time order."""
    origin: Origin
    """Where it came from; notes the relative paths its checks made absolute."""
    availability: Availability | None = None
    """``faults.availability``, read and checked."""

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def threads(self) -> int:
        return self.config.execution.threads

    def executor(self) -> Executor:
        """A fresh executor of learning jobs, as ``execution`` asks (close it after)."""
        execution = self.config.execution
        workers = execution.workers or default_workers(execution.threads)
        executor: Executor = InlineExecutor()
        if execution.backend == "pool":
            executor = PoolExecutor(workers, execution.threads)
        elif execution.backend == "ray":
            executor = RayExecutor(workers, execution.threads, execution.address)
        return BatchingExecutor(executor) if execution.batch_clients else executor

    @property
    def time_limit_s(self) -> float:
        return self.config.execution.time_limit_s

    def world(self) -> World:
        """A fresh world for one run of this scenario."""
        net, faults = self.config.network, self.config.faults
        events = [LinkEvent(e.at, e.a, e.b, e.state == "up") for e in net.events]
        dropout = faults.dropout
        return World(
            self.topology,
            seed=self.seed,
            bandwidth_factor=net.bandwidth_factor,
            latency_factor=net.latency_factor,
            sharing=net.sharing(),
            codec=get_codec(net.codec),
            link_events=events,
            node_events=self.node_events,
            availability=self.availability,
            dropout=dropout and Dropout(dropout.tier, dropout.probability, self.seed),
            retry=faults.retry,
        )

    def as_run(self, run_dir: Path | None = None) -> dict[str, Any]:
        """The scenario as run: defaults filled, overrides applied, topology inline.

        Its paths (data, traces, checkpoints, plug-in files) are absolute; given
        ``run_dir``, the folder its ``scenario.yaml`` goes to, those the scenario gave
        relative are relative to ``run_dir`` instead (absolute ones stay absolute). So
        ``simnet run RUN_DIR/scenario.yaml`` runs again where it lies, and a run moved
        together with the files it names (a sweep's tree: scenario, data, output) reads
        back equal, which is what lets a moved sweep resume without rerunning its points.
        """
        data = self.config.model_dump(mode="json")
        data["topology"] = self.topology.to_dict()
        data["workload"] = self.workload.model_dump(mode="json")
        if run_dir is None:
            return data
        start = Path(run_dir).resolve()
        return relative_paths(data, self.origin.made_absolute, start)


def relative_paths(data: Any, absolute: set[str], start: Path) -> Any:
    """``data`` with each string that is one of the paths ``absolute`` (or a plug-in
    reference ``path:Name`` to one) made relative to ``start``."""
    if isinstance(data, dict):
        return {key: relative_paths(value, absolute, start) for key, value in data.items()}
    if isinstance(data, list):
        return [relative_paths(value, absolute, start) for value in data]
    if not isinstance(data, str):
        return data
    path, colon, name = (data, "", "") if data in absolute else data.rpartition(":")
    if path not in absolute:
        return data
    return f"{os.path.relpath(path, start)}{colon}{name}"


Overrides = Mapping[str, Any] | Sequence[str | tuple[str, Any]]
"""``--set`` overrides: ``dotted.key=value`` texts (the value read as YAML), or a mapping
of dotted keys to Python values, or (key, value) pairs (the same meaning, the value taken
as it is)."""


def parse_assignment(assignment: str) -> tuple[str, Any]:
    """``dotted.key=value`` as (key, value), the value read as YAML (text that is not YAML
    stays text, except for a link-class key, whose value must be a number)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise InputError("--set", assignment, "expected dotted.key=value")
    try:
        return key, yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        if link_classes.is_link_key(key):
            problem = getattr(exc, "problem", None) or "not YAML"
            raise InputError("--set", key, f"invalid value {raw!r}: {problem}") from None
        return key, raw


def override_pairs(overrides: Overrides | None) -> list[tuple[str, Any]]:
    """``overrides`` as (dotted key, value) pairs, in order."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [(str(key), value) for key, value in overrides.items()]
    if isinstance(overrides, str):
        raise InputError("--set", overrides, "overrides are a list of key=value or a mapping")
    return [parse_assignment(a) if isinstance(a, str) else (str(a[0]), a[1]) for a in overrides]


def apply_override(data: dict[str, Any], key: str, value: Any) -> None:
    """Set the field at ``key`` (dotted) of ``data`` to ``value``, in place.

    List items are addressed by index: ``workload.transfers.0.bytes``. (Link classes,
    ``topology.links[edge-cloud].bandwidth_mbps``, are handled by
    :mod:`simnet.config.link_overrides` after the topology is loaded.)
    """
    if not key:
        raise InputError("--set", key, "expected a dotted key")
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        here = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise InputError("--set", here, f"no item {part} in a list of {len(node)}")
            index: Any = int(part)
        elif isinstance(node, dict):
            index = part
            if not last and index not in node:
                node[index] = {}
        else:
            raise InputError("--set", here, "cannot set a field inside a plain value")
        if last:
            node[index] = copy.deepcopy(value)
        else:
            node = node[index]


def load_scenario(
    source: Path | str | Mapping[str, Any],
    overrides: Overrides | None = None,
    seed: int | None = None,
    base_dir: Path | str | None = None,
) -> Scenario:
    """Read (from a file, or take the mapping ``source``: its relative paths resolved
    against ``base_dir``, default the working directory), override and validate a
    scenario; user mistakes raise :class:`InputError`."""
    if isinstance(source, Mapping):
        raw: Any = source
        label, base, name = "<scenario>", Path(base_dir or "."), "scenario"
    else:
        path = Path(source)
        raw = read_yaml(path, "scenario file")
        label, base, name = str(path), path.parent, path.stem
    if not isinstance(raw, Mapping):
        raise InputError(label, "", "a scenario must be a mapping of fields")
    data = copy.deepcopy(dict(raw))
    plain, link_overrides = link_classes.split(override_pairs(overrides))
    for key, value in plain:
        apply_override(data, key, value)
    if seed is not None:
        data["seed"] = seed
    data.setdefault("name", name)
    config = parse(ScenarioConfig, data, label)
    topology = load_topology(config.topology, label, base)
    topology = link_classes.apply(topology, link_overrides, label)
    kind = config.workload.get("kind")
    if kind not in WORKLOADS:
        known = ", ".join(sorted(WORKLOADS))
        raise InputError(label, "workload.kind", f"must be one of {known} (got {kind!r})")
    workload = parse(WORKLOADS[kind].Config, config.workload, label, "workload")
    if config.execution.device != "cpu" and kind != "federated":
        message = f"only federated workloads train on {config.execution.device}, not {kind}"
        raise InputError(label, "execution.device", message)
    _check_link_events(config, topology, label)
    origin = Origin(label, base)
    faults = config.faults
    if faults.trace is not None:
        faults.trace = str(origin.resolve(faults.trace))
    if isinstance(faults.availability, str):
        faults.availability = str(origin.resolve(faults.availability))
    crashes = node_events(faults, topology, label, base)
    availability = read_availability(faults.availability, topology, label, base, config.seed)
    dropout = faults.dropout.probability if faults.dropout else 0.0
    faulty = bool(crashes or config.network.events or dropout > 0 or availability)
    WORKLOADS[kind].check(workload, topology, origin, config.seed, faulty)
    return Scenario(label, config, topology, workload, crashes, origin, availability)


def _check_link_events(config: ScenarioConfig, topology: Topology, source: str) -> None:
    """Every scheduled link event names two nodes with a link between them."""
    for i, event in enumerate(config.network.events):
        for end in ("a", "b"):
            if getattr(event, end) not in topology.nodes:
                name = getattr(event, end)
                raise InputError(source, f"network.events.{i}.{end}", f"unknown node {name!r}")
        if frozenset((event.a, event.b)) not in topology.links:
            raise InputError(
                source, f"network.events.{i}", f"no link between {event.a!r} and {event.b!r}"
            )
