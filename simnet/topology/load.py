"""Build a :class:`Topology` from a file path, an inline dict, a generator or a GraphML file.

Accepted forms of a scenario's ``topology`` value:

* ``"path.yaml"`` — a topology file (the format of docs/design.md), relative to the scenario file;
* ``"path.graphml"`` — a GraphML file imported with default attribute mapping;
* ``{nodes: [...], links: [...]}`` — the same format inline;
* ``{generate: tree|star, ...}`` — a generated topology (``simnet.topology.generators``);
* ``{graphml: path, ...mapping}`` — a GraphML import with attribute mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simnet.config.validation import parse
from simnet.config.yaml_file import read_yaml
from simnet.errors import InputError
from simnet.topology import generators
from simnet.topology.graph import LinkSpec, NodeSpec, Power, Topology
from simnet.topology.graphml import from_graphml
from simnet.topology.profiles import with_profiles
from simnet.topology.schema import TopologyConfig

GENERATORS = {"tree": generators.tree, "star": generators.star}


def topology_from_dict(data: Any, source: str, prefix: str = "") -> Topology:
    """Validate a topology in the file format and build it.

    Errors name ``source`` and the field path under ``prefix`` (``topology.links.2.a``).
    """
    config = parse(TopologyConfig, with_profiles(data, source, prefix), source, prefix)
    base = f"{prefix}." if prefix else ""
    nodes: dict[str, NodeSpec] = {}
    for i, n in enumerate(config.nodes):
        if n.id in nodes:
            raise InputError(source, f"{base}nodes.{i}.id", f"duplicate node id {n.id!r}")
        power = Power(**n.power.model_dump())
        nodes[n.id] = NodeSpec(n.id, n.tier, float(n.flops or 0), n.slots, power)
    links: dict[frozenset[str], LinkSpec] = {}
    for i, cfg in enumerate(config.links):
        for end in ("a", "b"):
            if getattr(cfg, end) not in nodes:
                name = getattr(cfg, end)
                raise InputError(source, f"{base}links.{i}.{end}", f"unknown node {name!r}")
        link = LinkSpec(cfg.a, cfg.b, cfg.latency_ms, cfg.up, cfg.down)
        if link.key in links:
            raise InputError(
                source, f"{base}links.{i}", f"duplicate link between {cfg.a!r} and {cfg.b!r}"
            )
        links[link.key] = link
    return Topology(list(nodes.values()), list(links.values()))


def load_topology(spec: Any, source: str, base_dir: Path, field: str = "topology") -> Topology:
    """Build the topology a scenario names in ``spec`` (see the module docstring)."""
    if isinstance(spec, str):
        path = base_dir / spec
        if path.suffix.lower() == ".graphml":
            return topology_from_dict(from_graphml(path, {}, str(path)), str(path))
        if not path.is_file():
            raise InputError(source, field, f"topology file not found: {path}")
        return topology_from_dict(read_yaml(path, "topology file"), str(path))
    if not isinstance(spec, dict):
        raise InputError(source, field, "must be a file path or a mapping")
    if "generate" in spec:
        rest = {k: v for k, v in spec.items() if k != "generate"}
        kind = spec["generate"]
        if kind not in GENERATORS:
            known = ", ".join(GENERATORS)
            raise InputError(source, f"{field}.generate", f"must be one of {known} (got {kind!r})")
        try:
            data = GENERATORS[kind](rest, source)
        except InputError as exc:
            raise exc.within(field) from None
        return topology_from_dict(data, source, field)
    if "graphml" in spec:
        rest = {k: v for k, v in spec.items() if k != "graphml"}
        try:
            data = from_graphml(base_dir / str(spec["graphml"]), rest, source)
        except InputError as exc:
            raise exc.within(field) from None
        return topology_from_dict(data, source, field)
    return topology_from_dict(spec, source, field)
